#!/bin/bash
# Stand up BottleCRM (django-crm 1.35.0) on 127.0.0.1:$BOTTLECRM_PORT against the local PostgreSQL, without
# Redis (settings overlay bottlecrm_settings.py: eager Celery, loopback webhook targets allowed), for the
# real-peer connector tests (tests/sync/peers/). Idempotent and fast on a second run:
#   - the venv under .peers/bottlecrm/venv is reused when django-crm is installed (no pip);
#   - `migrate` (~2.5 min) runs once into a template database; later runs copy it with `createdb -T`;
#   - the working database is reused if it exists; a server already answering on the port is left alone;
#   - every run mints a fresh org-bound JWT (valid 1 h) into .peers/bottlecrm/jwt, and keeps a personal
#     access token (no expiry) in .peers/bottlecrm/token, creating it when missing or refused;
#   - the Account custom field `inn` is created when missing.
# Env: BOTTLECRM_PORT (8002), BOTTLECRM_DB (hub_bottlecrm), BOTTLECRM_RESET=1 (recreate the working DB from
#      the template), PGHOST/PGPORT/PGUSER (127.0.0.1/5432/postgres), PY312 (a Python >= 3.12).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=${BOTTLECRM_WORKDIR:-$ROOT/.peers/bottlecrm}
PORT=${BOTTLECRM_PORT:-8002}
DB=${BOTTLECRM_DB:-hub_bottlecrm}
TPL=${DB}_template
ORG="Hub Test Org"
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
mkdir -p "$W"; cd "$W"
t0=$(date +%s)
log() { echo "[bottlecrm_up +$(( $(date +%s) - t0 ))s] $*"; }
alive() { curl -sf -m 3 -o /dev/null "http://127.0.0.1:$PORT/healthz/"; }
db_exists() { [ "$(psql -qtAc "SELECT 1 FROM pg_database WHERE datname='$1'" postgres)" = 1 ]; }

if [ ! -x venv/bin/django-admin ] || ! venv/bin/python -c 'import crm.settings' 2>/dev/null; then
  PY=${PY312:-}
  if [ -z "$PY" ]; then
    cands=""
    command -v pyenv >/dev/null && cands=$(ls -d "$(pyenv root)"/versions/3.1[23]*/bin/python 2>/dev/null || true)
    for c in $cands python3.12 python3.13 python3; do
      if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then PY=$c; break; fi
    done
  fi
  [ -n "$PY" ] || { echo "BottleCRM needs Python >= 3.12 (set PY312=/path/to/python3.12)" >&2; exit 1; }
  log "creating venv with $PY and installing django-crm 1.35.0 (cold run)"
  "$PY" -m venv venv
  ./venv/bin/pip install -q 'django-crm==1.35.0' packaging 2> >(grep -v 'is ignored: it is neither' >&2)  # packaging: undeclared dep (kombu)
else
  log "venv present, skipping pip"
fi
cp "$HERE/bottlecrm_settings.py" "$W/hub_bottlecrm_settings.py"

psql -qtAc "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='bottlecrm') THEN CREATE ROLE bottlecrm LOGIN SUPERUSER PASSWORD 'bottlecrm'; END IF; END\$\$" postgres

write_env() {
  cat > env.sh <<ENV
export PYTHONPATH=$W DJANGO_SETTINGS_MODULE=hub_bottlecrm_settings
export SECRET_KEY=dev-secret-key-for-local-tests-only-0123456789abcdef ENV_TYPE=dev DEBUG=true
export DBNAME=$1 DBUSER=bottlecrm DBPASSWORD=bottlecrm DBHOST=$PGHOST DBPORT=$PGPORT
export ALLOWED_HOSTS=localhost,127.0.0.1
ENV
}

if [ "${BOTTLECRM_RESET:-0}" = 1 ] && db_exists "$DB"; then
  if [ -f server.pid ]; then kill "$(cat server.pid)" 2>/dev/null || true; sleep 1; fi
  dropdb --if-exists "$DB"
fi
if ! db_exists "$DB"; then
  if ! db_exists "$TPL" || [ ! -f template.done ]; then
    log "migrating a fresh template database $TPL (~2.5 min, once)"
    dropdb --if-exists "$TPL"; rm -f template.done
    createdb -O bottlecrm "$TPL"
    write_env "$TPL"; . ./env.sh
    ./venv/bin/django-admin migrate --noinput > migrate.log 2>&1
    ./venv/bin/django-admin devlogin admin@example.com --create > /dev/null
    touch template.done
  fi
  log "creating $DB from template $TPL"
  createdb -O bottlecrm -T "$TPL" "$DB"
else
  log "database $DB exists, reusing it"
fi
write_env "$DB"; . ./env.sh

if alive; then
  log "BottleCRM already answering on 127.0.0.1:$PORT"
else
  log "starting BottleCRM"
  setsid ./venv/bin/django-admin runserver 127.0.0.1:$PORT --noreload > server.log 2>&1 < /dev/null & echo $! > server.pid
  for _ in $(seq 240); do alive && break; sleep 0.5; done
  alive || { echo "BottleCRM did not start, see $W/server.log" >&2; tail -20 server.log >&2; exit 1; }
fi

mint() { ./venv/bin/django-admin devlogin admin@example.com --org "$ORG" 2>/dev/null | awk '/^access_token:/{print $2}'; }
T=$(mint || true)
if [ -z "$T" ]; then
  log "creating organisation '$ORG'"
  T0=$(./venv/bin/django-admin devlogin admin@example.com | awk '/^access_token:/{print $2}')
  curl -sf -XPOST -H "Authorization: Bearer $T0" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$ORG\"}" "http://127.0.0.1:$PORT/api/org/" > /dev/null
  T=$(mint)
fi
umask 077; echo "$T" > jwt
api() { curl -sf -H "Authorization: Bearer $1" -H 'Content-Type: application/json' "${@:2}"; }
# A personal access token does not expire after an hour like the org-bound JWT: mint one once, reuse it.
if ! grep -q "^bcrm_pat_" token 2>/dev/null || ! api "$(cat token)" -o /dev/null "http://127.0.0.1:$PORT/api/accounts/?limit=1"; then
  log "creating a personal access token"
  api "$T" -XPOST -d '{"name":"hub-peer-tests"}' "http://127.0.0.1:$PORT/api/profile/tokens/" \
    | ./venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])' > token
fi
PAT=$(cat token)
# The INN lives in an Account custom field with key "inn" (the hub matches companies by it).
if ! api "$PAT" "http://127.0.0.1:$PORT/api/custom-fields/?target_model=Account" | grep -q '"key": *"inn"'; then
  log "creating the Account custom field 'inn'"
  api "$PAT" -XPOST -o /dev/null -d '{"target_model":"Account","key":"inn","label":"INN","field_type":"text","is_filterable":true}' \
    "http://127.0.0.1:$PORT/api/custom-fields/"
fi
cat > test_env.sh <<ENV
export BOTTLECRM_URL=http://127.0.0.1:$PORT BOTTLECRM_TOKEN_FILE=$W/token
ENV
log "BottleCRM ready: pid $(cat server.pid 2>/dev/null || echo '?') on http://127.0.0.1:$PORT database=$DB"
log "personal access token in $W/token (no expiry); a fresh org-bound JWT (1 h) in $W/jwt"
log "export the test env with: . $W/test_env.sh"
