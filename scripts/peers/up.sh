#!/bin/bash
# Stand up both real peers in parallel (Tryton on :8001, BottleCRM on :8002) and write .peers/env.sh with
# every variable the real-peer tests read:   bash scripts/peers/up.sh && . .peers/env.sh
# Logs: .peers/tryton_up.log, .peers/bottlecrm_up.log. Cold ~3-4 min (pip + migrate), warm ~15 s.
# Each script's TRYTON_*/BOTTLECRM_* variables (ports, databases, work dirs) pass through;
# PEERS_ENV / PEERS_LOGS move the env file and the logs.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$ROOT/.peers"
LOGS=${PEERS_LOGS:-$ROOT/.peers}
mkdir -p "$LOGS"
bash "$HERE/tryton_up.sh" > "$LOGS/tryton_up.log" 2>&1 & T=$!
bash "$HERE/bottlecrm_up.sh" > "$LOGS/bottlecrm_up.log" 2>&1 & B=$!
wait $T; TS=$?
wait $B; BS=$?
tail -3 "$LOGS/tryton_up.log"; tail -4 "$LOGS/bottlecrm_up.log"
if [ $TS -ne 0 ] || [ $BS -ne 0 ]; then
  echo "peers failed (tryton=$TS bottlecrm=$BS): see $LOGS/*_up.log" >&2
  exit 1
fi
ENV_OUT=${PEERS_ENV:-$ROOT/.peers/env.sh}
cat "${TRYTON_WORKDIR:-$ROOT/.peers/tryton}/env.sh" "${BOTTLECRM_WORKDIR:-$ROOT/.peers/bottlecrm}/test_env.sh" > "$ENV_OUT"
echo "peers up; export their settings with: . $ENV_OUT"
