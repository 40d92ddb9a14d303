#!/usr/bin/env bash
# `make run`: prepare a local hub and serve it in the foreground.
#
#   1. writes .env on the first run (DEBUG on, a random SECRET_KEY, local hosts only);
#   2. migrates, collects static files, seeds the demo data (once), ensures an admin user
#      (its password is printed once, or taken from ADMIN_PASSWORD);
#   3. runs web (gunicorn + WhiteNoise), a Celery worker and Celery beat with honcho (Procfile.dev).
#      Ctrl-C stops all three.
#
# Defaults need no server: SQLite in var/hub.sqlite3 and a SQLite-file Celery broker in
# var/celery-broker.sqlite3. Set DATABASE_URL / CELERY_BROKER_URL (in .env or the environment) to
# use PostgreSQL / Redis. PORT (default 8000) chooses the web port.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
    echo "run.sh: $PY not found; run 'make run' (it installs the virtualenv first)." >&2
    exit 1
fi

export PORT="${PORT:-8000}"
export PYTHONUNBUFFERED=1

# --- 1. .env ------------------------------------------------------------------------------------
if [[ ! -f .env ]]; then
    secret="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(50))')"
    (
        umask 077
        cat >.env <<EOF
# Local settings written by 'make run' (scripts/run.sh) on $(date -u +%Y-%m-%dT%H:%M:%SZ).
# For local development only: DEBUG is on. Never commit this file (it is in .gitignore).
# Every setting is listed in README.md ("Configuration"). Examples:
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub
#   CELERY_BROKER_URL=redis://127.0.0.1:6379/0
#   ADMIN_PASSWORD=...   (the admin password; ensure_admin applies it on every make run)
DEBUG=true
SECRET_KEY=${secret}
ALLOWED_HOSTS=127.0.0.1,localhost
EOF
    )
    echo "==> Wrote .env (DEBUG=true, random SECRET_KEY, ALLOWED_HOSTS=127.0.0.1,localhost)"
fi

# Refuse early, with a clear message, if the web port is taken (otherwise gunicorn dies and
# honcho stops everything with a less obvious error).
if ! "$PY" - "$PORT" <<'EOF'; then
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
    echo "run.sh: port $PORT on 127.0.0.1 is already in use; stop what uses it or run: PORT=8001 make run" >&2
    exit 1
fi

# --- 2. database, static files, demo data, admin -------------------------------------------------
echo "==> Applying migrations"
"$PY" manage.py migrate --noinput
echo "==> Collecting static files"
"$PY" manage.py collectstatic --noinput -v0
echo "==> Demo data (created once; skipped when it exists)"
"$PY" manage.py seed_demo
echo "==> Admin user"
"$PY" manage.py ensure_admin

# --- 3. serve -----------------------------------------------------------------------------------
base="http://127.0.0.1:${PORT}"
cat <<EOF

==> The hub is starting:
      App        ${base}/
      Admin      ${base}/admin/
      API docs   ${base}/api/docs/
      OpenAPI    ${base}/api/schema/
      Health     ${base}/healthz
    web (gunicorn), worker and beat (Celery) log below. Press Ctrl-C to stop all of them.

EOF

# honcho gives the first process (web) PORT itself (the next ones PORT+100, PORT+200, unused).
# "-e /dev/null": honcho does not parse .env itself; settings.py reads it (one parser, one truth).
exec .venv/bin/honcho -f Procfile.dev -e /dev/null start --port "$PORT"
