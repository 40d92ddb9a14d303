#!/bin/bash
# Mint a fresh org-bound JWT (valid 1 h) for the BottleCRM started by bottlecrm_up.sh, write it to
# .peers/bottlecrm/jwt and print it. Needed only where BottleCRM refuses API tokens (webhook management).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${BOTTLECRM_WORKDIR:-$(cd "$HERE/../.." && pwd)/.peers/bottlecrm}
cd "$W"
. ./env.sh
T=$(./venv/bin/django-admin devlogin admin@example.com --org "Hub Test Org" 2>/dev/null | awk '/^access_token:/{print $2}')
[ -n "$T" ] || { echo "devlogin failed: is BottleCRM set up (scripts/peers/bottlecrm_up.sh)?" >&2; exit 1; }
umask 077; echo "$T" > jwt
echo "$T"
