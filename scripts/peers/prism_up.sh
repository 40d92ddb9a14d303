#!/usr/bin/env bash
# Install Stoplight Prism (a spec-driven mock server) into .peers/prism, ignored by git, so the
# `@pytest.mark.prism` tests can run the Xero connector against Xero's published OpenAPI description.
# Idempotent: does nothing when the pinned version is already there. Needs node >= 18 and npm.
# Usage: bash scripts/peers/prism_up.sh   (then: .peers/prism/node_modules/.bin/prism --version)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PRISM_VERSION="${PRISM_VERSION:-5.16.0}"
DIR=.peers/prism
BIN="$DIR/node_modules/.bin/prism"

if [[ -x "$BIN" ]] && [[ "$("$BIN" --version 2>/dev/null)" == "$PRISM_VERSION" ]]; then
    echo "prism $PRISM_VERSION already in $DIR"
    exit 0
fi
command -v npm >/dev/null || { echo "prism_up: npm is not installed (apt-get install nodejs npm)" >&2; exit 1; }

mkdir -p "$DIR"
[[ -f "$DIR/package.json" ]] || echo '{"name": "hub-peers-prism", "private": true}' >"$DIR/package.json"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error --save-exact "@stoplight/prism-cli@${PRISM_VERSION}"
"$BIN" --version
