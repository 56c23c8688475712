#!/usr/bin/env bash
# Installs what tests/frameworks_browser_test.go needs; idempotent.
#   - Debian's chromium (apt), used as /usr/bin/chromium: never a browser
#     that playwright downloads;
#   - playwright-core from npm (npm ci against package-lock.json).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
cd "$here"
want=$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
echo "browser test ready: /usr/bin/chromium $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core $want"
