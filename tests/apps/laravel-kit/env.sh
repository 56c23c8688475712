# Sourced by start and artisan-env: the environment the app runs with.
: "${APP_STATE_DIR:?APP_STATE_DIR must point to a writable directory}"
if [ -z "${APP_KEY:-}" ]; then
    APP_KEY="base64:$(head -c 32 /dev/urandom | base64 -w0)"
    echo "laravel-kit app: APP_KEY not set, generated $APP_KEY" >&2
fi
export APP_KEY APP_STATE_DIR
export APP_PACKAGES_CACHE="$APP_STATE_DIR/cache/packages.php"
export APP_SERVICES_CACHE="$APP_STATE_DIR/cache/services.php"
export APP_CONFIG_CACHE="$APP_STATE_DIR/cache/config.php"
export APP_ROUTES_CACHE="$APP_STATE_DIR/cache/routes.php"
export APP_EVENTS_CACHE="$APP_STATE_DIR/cache/events.php"
# The kit's optional last_logout_at / online_seconds bookkeeping.
export IDLEGATE_PRESENCE="${IDLEGATE_PRESENCE:-true}"
