#!/usr/bin/env bash
# Installs what tests/warning_browser_test.go needs: Debian's chromium (never
# a downloaded browser) and playwright-core from package-lock.json.
# Idempotent; needs root or sudo only when chromium is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

if ! command -v node >/dev/null 2>&1; then
    echo "warningbrowser: node (>= 20) is required" >&2
    exit 1
fi

# playwright-core has no install script, but make sure nothing fetches a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules/playwright-core ] || ! npm ls --silent >/dev/null 2>&1; then
    npm ci --no-audit --no-fund
fi
echo "warningbrowser: ready (chromium: $(command -v chromium || echo /usr/bin/chromium))"
