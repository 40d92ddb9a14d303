#!/bin/bash
# Create a fresh BottleCRM organisation (with the Account custom field `inn`) and print an org-bound JWT
# (valid 1 h) for it: a test that must see only its own CRM records works in its own organisation.
# Usage: bash scripts/peers/bottlecrm_org.sh "Org name"     (BottleCRM from bottlecrm_up.sh must be running)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${BOTTLECRM_WORKDIR:-$(cd "$HERE/../.." && pwd)/.peers/bottlecrm}
PORT=${BOTTLECRM_PORT:-8002}
ORG=${1:?usage: bottlecrm_org.sh ORG_NAME}
cd "$W"
. ./env.sh
api() { curl -sf -H "Authorization: Bearer $1" -H 'Content-Type: application/json' "${@:2}"; }
T0=$(./venv/bin/django-admin devlogin admin@example.com 2>/dev/null | awk '/^access_token:/{print $2}')
[ -n "$T0" ] || { echo "devlogin failed: is BottleCRM set up (scripts/peers/bottlecrm_up.sh)?" >&2; exit 1; }
api "$T0" -XPOST -d "{\"name\":\"$ORG\"}" "http://127.0.0.1:$PORT/api/org/" > /dev/null
T=$(./venv/bin/django-admin devlogin admin@example.com --org "$ORG" 2>/dev/null | awk '/^access_token:/{print $2}')
[ -n "$T" ] || { echo "no token for organisation $ORG" >&2; exit 1; }
api "$T" -XPOST -d '{"target_model":"Account","key":"inn","label":"INN","field_type":"text","is_filterable":true}' \
  "http://127.0.0.1:$PORT/api/custom-fields/" > /dev/null
echo "$T"
