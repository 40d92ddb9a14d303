#!/bin/bash
# Stop the peer servers started by scripts/peers/tryton_up.sh and bottlecrm_up.sh (by their recorded pid).
# Databases, venvs and tokens stay, so the next *_up.sh is fast. `down.sh --purge` also drops the
# databases (the BottleCRM template too) and removes the work dirs. Honours the same TRYTON_WORKDIR,
# TRYTON_DB, BOTTLECRM_WORKDIR, BOTTLECRM_DB as the up scripts.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TW=${TRYTON_WORKDIR:-$ROOT/.peers/tryton}
BW=${BOTTLECRM_WORKDIR:-$ROOT/.peers/bottlecrm}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
stop() {
  local pidfile=$1 name=$2
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}
stop "$TW/trytond.pid" trytond
stop "$BW/server.pid" BottleCRM
if [ "${1:-}" = "--purge" ]; then
  for db in "${TRYTON_DB:-hub_tryton}" "${BOTTLECRM_DB:-hub_bottlecrm}" "${BOTTLECRM_DB:-hub_bottlecrm}_template"; do
    dropdb --if-exists "$db" && echo "dropped database $db"
  done
  rm -rf "$TW" "$BW" && echo "removed $TW $BW"
fi
