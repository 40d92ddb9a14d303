#!/usr/bin/env bash
# `make bench-api`: the client list API under load, on one machine, traffic on loopback only.
#
#   PostgreSQL database hub_bench (dropped and recreated) ► migrate ► 100,000 clients ► ANALYZE
#   ► a read API key ► gunicorn hub.wsgi:application, 2 workers ► warm-up ► wrk -t2 -c16 -d20s
#
# Prints, on success:
#   BENCH api_clients_rps <n> req/s
#   BENCH api_clients_p99 <n> ms
# and fails loudly when any response is not 2xx. Everything else goes to stderr, including the CPU time
# the gunicorn workers and PostgreSQL spent per request (comparable between runs on a busy machine)
# and a warning when the machine was already loaded before the run.
#
# Knobs (environment): BENCH_CLIENTS (100000), BENCH_WORKERS (2), BENCH_WORKER_CLASS (sync|gthread),
# BENCH_THREADS (gthread threads per worker, 4), BENCH_DURATION (20s), BENCH_CONNECTIONS (16),
# BENCH_THREADS_WRK (2), BENCH_SKIP_SEED=1 (reuse an already seeded hub_bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
GUNICORN="$ROOT/.venv/bin/gunicorn"

CLIENTS="${BENCH_CLIENTS:-100000}"
WORKERS="${BENCH_WORKERS:-2}"
WORKER_CLASS="${BENCH_WORKER_CLASS:-sync}"
THREADS="${BENCH_THREADS:-4}"
DURATION="${BENCH_DURATION:-20s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
WRK_THREADS="${BENCH_THREADS_WRK:-2}"
DB_NAME=hub_bench
PG="psql -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 -qAt"

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB_NAME}"
export DEBUG=false SECRET_KEY=bench ALLOWED_HOSTS=127.0.0.1,localhost LOG_LEVEL=WARNING
export DJANGO_SETTINGS_MODULE=hub.settings
# No broker is needed to serve reads; keep Celery off the network if anything enqueues.
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-memory://}"

say() { printf 'bench-api: %s\n' "$*" >&2; }
die() { printf 'bench-api: FAILED: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------------
[ -x "$PY" ] || die "no virtualenv at .venv; run make install"
if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk"
    [ "$(id -u)" = 0 ] || die "wrk is missing and we are not root: apt-get install -y wrk"
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    command -v wrk >/dev/null 2>&1 || die "could not install wrk"
fi

# --- PostgreSQL ------------------------------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up on 127.0.0.1:5432"
fi

if [ "${BENCH_SKIP_SEED:-0}" != 1 ]; then
    say "recreating database ${DB_NAME}"
    $PG -d postgres -c "DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)"
    $PG -d postgres -c "CREATE DATABASE ${DB_NAME}"
    say "migrating"
    timeout 300 "$PY" manage.py migrate --noinput -v 0
    say "seeding ${CLIENTS} clients"
    timeout 600 "$PY" scripts/bench_api_seed.py --clients "$CLIENTS" --batch 5000 >&2
fi

# --- API key ---------------------------------------------------------------------------------------
# Reads only, so a read-scoped key is enough. Prefer the management command (prints the key last).
KEY=""
if "$PY" manage.py help apikey >/dev/null 2>&1; then
    KEY="$(timeout 60 "$PY" manage.py apikey create bench --scope read | tail -n 1 | tr -d '[:space:]')"
else
    KEY="$(timeout 60 "$PY" manage.py shell -c \
        'from hub.api_auth import apikey_create; print(apikey_create(name="bench", scope="read")[1])' \
        | tail -n 1 | tr -d '[:space:]')"
fi
case "$KEY" in hub_*) ;; *) die "could not create an API key (got: '${KEY:0:20}')";; esac
export BENCH_API_KEY="$KEY"

# --- gunicorn --------------------------------------------------------------------------------------
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:${PORT}/api/v1/clients/"
LOG="$(mktemp -t hub-bench-gunicorn.XXXXXX.log)"
WRK_OUT="$(mktemp -t hub-bench-wrk.XXXXXX.txt)"
GUNICORN_PID=""
cleanup() {
    if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
        kill -TERM "$GUNICORN_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$GUNICORN_PID" 2>/dev/null || true
    fi
    rm -f "$WRK_OUT"
    [ -z "${SNAP:-}" ] || rm -rf "$SNAP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

GUNICORN_ARGS=(hub.wsgi:application --bind "127.0.0.1:${PORT}" --workers "$WORKERS"
               --worker-class "$WORKER_CLASS" --backlog 256 --timeout 30 --log-level warning
               --no-control-socket)  # the default ~/.gunicorn/gunicorn.ctl would clobber another gunicorn's
# As in production (Procfile, hub-web.service): the per-request worker heartbeat goes to memory, not disk.
[ -d /dev/shm ] && GUNICORN_ARGS+=(--worker-tmp-dir /dev/shm)
if [ "$WORKER_CLASS" = gthread ]; then
    GUNICORN_ARGS+=(--threads "$THREADS" --keep-alive 5)
fi
say "gunicorn ${WORKERS} x ${WORKER_CLASS}$([ "$WORKER_CLASS" = gthread ] && echo " x ${THREADS} threads") on 127.0.0.1:${PORT} (log: ${LOG})"
"$GUNICORN" "${GUNICORN_ARGS[@]}" >"$LOG" 2>&1 &
GUNICORN_PID=$!

status=000
for _ in $(seq 1 60); do
    kill -0 "$GUNICORN_PID" 2>/dev/null || { cat "$LOG" >&2; die "gunicorn exited"; }
    status="$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Authorization: Bearer ${KEY}" "$URL" || true)"
    [ "$status" != 000 ] && break
    sleep 0.5
done
if [ "$status" != 200 ]; then
    curl -s -m 5 -H "Authorization: Bearer ${KEY}" "$URL" | head -c 2000 >&2 || true
    echo >&2
    tail -n 40 "$LOG" >&2
    die "GET /api/v1/clients/ answered HTTP ${status}, expected 200"
fi
BODY="$(curl -s -m 5 -H "Authorization: Bearer ${KEY}" "$URL")"
"$PY" -c '
import json, sys
page = json.loads(sys.argv[1])
results = page.get("results")
assert isinstance(results, list) and results, "no results in the page"
has_next = bool(page.get("next"))
print(f"bench-api: first page has {len(results)} clients; next page: {has_next}", file=sys.stderr)
' "$BODY" || die "unexpected response body: ${BODY:0:500}"

say "warming up (5s)"
timeout 30 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d5s -s scripts/bench_clients.lua "$URL" >/dev/null \
    || die "wrk warm-up failed"

# CPU time (ms) each given process has used so far, as "pid ms" lines: a noise-resistant figure to
# compare runs with, since wrk, PostgreSQL and whatever else runs on the machine share the same cores.
cpu_snapshot() {
    local pid fields
    for pid in "$@"; do
        fields="$(cut -d')' -f2- "/proc/${pid}/stat" 2>/dev/null)" || continue
        # shellcheck disable=SC2086
        set -- $fields
        echo "$pid $(( (${12} + ${13}) * 1000 / CLK_TCK ))"
    done
}
# Sum of the CPU used between two snapshots by the processes present in both.
cpu_delta() { awk 'NR == FNR { a[$1] = $2; next } ($1 in a) { t += $2 - a[$1] } END { print t + 0 }' "$1" "$2"; }
CLK_TCK="$(getconf CLK_TCK)"
read -r LOAD1 _ < /proc/loadavg
CORES="$(nproc)"
if awk -v l="$LOAD1" -v c="$CORES" 'BEGIN { exit !(l > c / 2) }'; then
    say "WARNING: load average ${LOAD1} on ${CORES} cores before the run: other work shares the CPU, figures will be low"
fi
WORKER_PIDS="$(pgrep -P "$GUNICORN_PID" | tr '\n' ' ' || true)"
# The PostgreSQL backends serving hub_bench (the workers keep theirs open: CONN_MAX_AGE).
PG_PIDS="$(pgrep -u postgres -f "postgres: .* ${DB_NAME} " | tr '\n' ' ' || true)"
SNAP="$(mktemp -d -t hub-bench-cpu.XXXXXX)"
# shellcheck disable=SC2086
cpu_snapshot $WORKER_PIDS >"$SNAP/w0"; cpu_snapshot $PG_PIDS >"$SNAP/p0"

say "wrk -t${WRK_THREADS} -c${CONNECTIONS} -d${DURATION} --latency ${URL}"
timeout 120 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s --latency \
    -s scripts/bench_clients.lua "$URL" | tee "$WRK_OUT" >&2 || die "wrk failed or timed out"
# shellcheck disable=SC2086
cpu_snapshot $WORKER_PIDS >"$SNAP/w1"; cpu_snapshot $PG_PIDS >"$SNAP/p1"
NREQ="$(awk '/requests in/ {print $1}' "$WRK_OUT")"
if [ -n "$NREQ" ] && [ "$NREQ" -gt 0 ]; then
    say "$(awk -v a="$(cpu_delta "$SNAP/w0" "$SNAP/w1")" -v p="$(cpu_delta "$SNAP/p0" "$SNAP/p1")" -v n="$NREQ" \
        'BEGIN { printf "CPU per request: gunicorn workers %.2f ms, PostgreSQL (hub_bench backends) %.2f ms (%d requests)", a/n, p/n, n }')"
fi

if grep -q "Non-2xx or 3xx responses" "$WRK_OUT"; then
    tail -n 40 "$LOG" >&2
    die "$(grep 'Non-2xx or 3xx responses' "$WRK_OUT" | tr -s ' ')"
fi
if grep -q "Socket errors" "$WRK_OUT"; then
    say "WARNING: $(grep 'Socket errors' "$WRK_OUT" | tr -s ' ')"
fi

RPS="$(awk '/^Requests\/sec:/ {print $2}' "$WRK_OUT")"
P99="$(awk '$1 == "99%" {v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); v = v + 0 }
        else if (v ~ /m$/) { sub(/m$/, "", v); v = v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
        printf "%.2f", v }' "$WRK_OUT")"
[ -n "$RPS" ] && [ -n "$P99" ] || die "could not parse wrk output"

echo "BENCH api_clients_rps ${RPS} req/s"
echo "BENCH api_clients_p99 ${P99} ms"
rm -f "$LOG"
