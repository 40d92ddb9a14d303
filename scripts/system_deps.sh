#!/usr/bin/env bash
# Debian packages the test suite and fast PDF rendering need; installs only what is missing.
# chromium drives the manager UI's browser tests (Playwright uses /usr/bin/chromium; never `playwright install`).
set -euo pipefail
need=()
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || need+=(libharfbuzz-subset0)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# node + npm run Prism, the spec-driven Xero mock (scripts/peers/prism_up.sh); curl drives the peer scripts.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
else
    echo "system packages present"
fi
