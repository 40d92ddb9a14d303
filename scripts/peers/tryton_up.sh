#!/bin/bash
# Stand up a real Tryton 8.2 accounting server (trytond) on 127.0.0.1:$TRYTON_PORT, backed by the local
# PostgreSQL, for the real-peer connector tests (tests/sync/peers/). Idempotent:
#   - the venv under .peers/tryton/venv is reused when it already has trytond (no pip on a second run);
#   - the database is reused when tryton_setup.py already ran in it (company present);
#   - a trytond already answering on the port is left alone.
# Cold: ~70-120 s (pip + module install + chart of accounts); warm: a few seconds.
# Env: TRYTON_PORT (8001), TRYTON_DB (hub_tryton), PGHOST/PGPORT/PGUSER (127.0.0.1/5432/postgres),
#      TRYTON_RESET=1 drops and recreates the database.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=${TRYTON_WORKDIR:-$ROOT/.peers/tryton}
DB=${TRYTON_DB:-hub_tryton}
PORT=${TRYTON_PORT:-8001}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PYTHON=${TRYTON_PYTHON:-python3}
mkdir -p "$W"; cd "$W"
t0=$(date +%s)
log() { echo "[tryton_up +$(( $(date +%s) - t0 ))s] $*"; }

url_alive() {
  curl -sf -m 3 -XPOST -H 'Content-Type: application/json' \
    -d '{"id":1,"method":"common.server.version","params":[]}' "http://127.0.0.1:$PORT/rpc/" >/dev/null 2>&1
}

if [ ! -x venv/bin/trytond ] || [ ! -x venv/bin/python ] || ! venv/bin/python -c 'import proteus, trytond.modules.sale_opportunity' 2>/dev/null; then
  log "creating venv and installing trytond 8.2 + modules (cold run)"
  "$PYTHON" -m venv venv
  ./venv/bin/pip install -q 'trytond[postgresql]==8.2.*' 'psycopg[binary]' 'proteus==8.2.*' 'trytond-party==8.2.*' \
    'trytond-company==8.2.*' 'trytond-currency==8.2.*' 'trytond-country==8.2.*' \
    'trytond-account==8.2.*' 'trytond-account-invoice==8.2.*' 'trytond-account-payment==8.2.*' \
    'trytond-account-statement==8.2.*' 'trytond-sale==8.2.*' 'trytond-sale-opportunity==8.2.*' \
    2> >(grep -v 'is ignored: it is neither' >&2)
else
  log "venv present, skipping pip"
fi

psql -qtAc "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='tryton') THEN CREATE ROLE tryton LOGIN PASSWORD 'tryton' CREATEDB; END IF; END\$\$" postgres

cat > trytond.conf <<CONF
[database]
uri = postgresql://tryton:tryton@$PGHOST:$PGPORT/
[web]
listen = 127.0.0.1:$PORT
[session]
timeout = 3600
CONF
echo admin > adminpass; export TRYTONPASSFILE=$W/adminpass

db_ready() {
  [ "$(psql -qtAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres)" = 1 ] || return 1
  [ "$(psql -qtAc "SELECT count(*) FROM information_schema.tables WHERE table_name='company_company'" "$DB")" = 1 ] || return 1
  [ "$(psql -qtAc "SELECT count(*) FROM company_company" "$DB")" -ge 1 ] || return 1
  [ "$(psql -qtAc "SELECT count(*) FROM account_invoice_payment_method" "$DB" 2>/dev/null || echo 0)" -ge 1 ] || return 1
  # a fiscal year covering today (invoices cannot be posted outside one): a new year rebuilds the database
  [ "$(psql -qtAc "SELECT count(*) FROM account_fiscalyear WHERE start_date <= CURRENT_DATE AND end_date >= CURRENT_DATE" "$DB" 2>/dev/null || echo 0)" -ge 1 ]
}

if [ "${TRYTON_RESET:-0}" = 1 ] || ! db_ready; then
  if url_alive && [ -f trytond.pid ]; then kill "$(cat trytond.pid)" 2>/dev/null || true; sleep 1; fi
  log "creating database $DB (trytond-admin --all, modules, company + chart of accounts)"
  dropdb --if-exists "$DB"
  createdb -O tryton -E UTF8 -T template0 "$DB"
  ./venv/bin/trytond-admin -c trytond.conf -d "$DB" --all --email admin@example.com > admin.log 2>&1
  ./venv/bin/trytond-admin -c trytond.conf -d "$DB" --activate-dependencies \
     -u account_invoice account_payment account_statement sale sale_opportunity >> admin.log 2>&1
  ./venv/bin/python "$HERE/tryton_setup.py" trytond.conf "$DB" | tee setup.log
else
  log "database $DB already set up, reusing it"
fi

if url_alive; then
  log "trytond already answering on 127.0.0.1:$PORT"
else
  log "starting trytond"
  setsid ./venv/bin/trytond -c trytond.conf -d "$DB" > trytond.log 2>&1 < /dev/null & echo $! > trytond.pid
  for _ in $(seq 150); do url_alive && break; sleep 0.2; done
  url_alive || { echo "trytond did not start, see $W/trytond.log" >&2; tail -20 trytond.log >&2; exit 1; }
fi
cat > env.sh <<ENV
export TRYTON_URL=http://127.0.0.1:$PORT TRYTON_DATABASE=$DB TRYTON_USER=admin TRYTON_PASSWORD=admin
ENV
log "Tryton ready: pid $(cat trytond.pid 2>/dev/null || echo '?') on http://127.0.0.1:$PORT database=$DB user=admin password=admin"
log "export the test env with: . $W/env.sh"
