#!/usr/bin/env bash
# Installs what the four test apps need. Idempotent; CI calls it before the
# end-to-end tests. Debian bookworm: everything comes from apt, except the
# Express app's npm dependencies (npm ci against the committed lock file).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=(
    ca-certificates curl openssl util-linux coreutils   # smoke.sh, supervise
    python3 python3-django                               # django app (Django 3.2, /usr/bin/python3)
    php-cli php-sqlite3 php-mbstring php-xml             # plain PHP + Laravel
    php-laravel-framework                                # Laravel 8.83 under /usr/share/php/Illuminate
    composer                                             # laravel-kit: the idlegate kit from a path repository
    prometheus                                           # tests/dashboard_test.go: prometheus + promtool (integrations/)
    wordpress mariadb-server redmine redmine-sqlite ruby-webrick mediawiki dokuwiki  # issue 17's third-party apps (tests/legacy_test.go)
)
# Node may come from NodeSource (which bundles npm); only add Debian's
# packages when the commands are missing, to avoid package conflicts.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm  >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
    # The tests start their own Prometheus on random ports; not the package's service.
    $SUDO systemctl stop prometheus 2>/dev/null || true
fi

# The tests start their own MariaDB (unix socket, temp data dir) and php -S;
# the services these packages bring (mariadb, apache2 on :80) are not used.
$SUDO systemctl stop mariadb apache2 2>/dev/null || true

echo "setup.sh: npm ci in $here/express"
(cd "$here/express" && npm ci --no-audit --no-fund --loglevel=error)

echo "setup.sh: composer install in $here/laravel-kit (offline: path repository)"
"$here/laravel-kit/composer-install"

chmod +x "$here"/*/start "$here/lib/supervise" "$here/smoke.sh"
echo "setup.sh: done"
