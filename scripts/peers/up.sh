#!/bin/bash
# Stand up both real peers in parallel (Tryton on :8001, BottleCRM on :8002) and write .peers/env.sh with
# every variable the real-peer tests read:   bash scripts/peers/up.sh && . .peers/env.sh
# Logs: .peers/tryton_up.log, .peers/bottlecrm_up.log. Cold ~3-4 min (pip + migrate), warm ~15 s.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$ROOT/.peers"
bash "$HERE/tryton_up.sh" > "$ROOT/.peers/tryton_up.log" 2>&1 & T=$!
bash "$HERE/bottlecrm_up.sh" > "$ROOT/.peers/bottlecrm_up.log" 2>&1 & B=$!
wait $T; TS=$?
wait $B; BS=$?
tail -3 "$ROOT/.peers/tryton_up.log"; tail -4 "$ROOT/.peers/bottlecrm_up.log"
if [ $TS -ne 0 ] || [ $BS -ne 0 ]; then
  echo "peers failed (tryton=$TS bottlecrm=$BS): see .peers/*_up.log" >&2
  exit 1
fi
cat "$ROOT/.peers/tryton/env.sh" "$ROOT/.peers/bottlecrm/test_env.sh" > "$ROOT/.peers/env.sh"
echo "peers up; export their settings with: . $ROOT/.peers/env.sh"
