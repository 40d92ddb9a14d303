#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start whichever is down.
# Used by .ci/run; safe to run any number of times. Waits at most SERVICES_WAIT seconds (default 60).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT="${SERVICES_REDIS_PORT:-6379}"
WAIT="${SERVICES_WAIT:-60}"

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }
redis_up() { [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; }

# --- PostgreSQL -----------------------------------------------------------------------------------
if pg_up; then
    echo "services: PostgreSQL already up on $PG_HOST:$PG_PORT"
else
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$version" ]]; then
        echo "services: PostgreSQL is down and no cluster was found under /etc/postgresql" >&2
        exit 1
    fi
    echo "services: PostgreSQL is down; starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

# --- Redis ----------------------------------------------------------------------------------------
if redis_up; then
    echo "services: Redis already up on $REDIS_HOST:$REDIS_PORT"
else
    echo "services: Redis is down; starting redis-server on $REDIS_HOST:$REDIS_PORT (no persistence)"
    # "-::1" binds IPv6 loopback too when it exists and is skipped silently when it does not.
    redis-server --daemonize yes --bind "$REDIS_HOST" -::1 --port "$REDIS_PORT" --save "" --appendonly no
fi

# --- wait (bounded) -------------------------------------------------------------------------------
deadline=$((SECONDS + WAIT))
until pg_up && redis_up; do
    if ((SECONDS >= deadline)); then
        pg_up || echo "services: PostgreSQL still not ready on $PG_HOST:$PG_PORT after ${WAIT}s" >&2
        redis_up || echo "services: Redis still not answering on $REDIS_HOST:$REDIS_PORT after ${WAIT}s" >&2
        exit 1
    fi
    sleep 0.5
done
echo "services: PostgreSQL and Redis are ready"
