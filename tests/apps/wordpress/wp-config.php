<?php
// This test's wp-config.php. Debian's own /usr/share/wordpress/wp-config.php
// reads /etc/wordpress/config-<host>.php; instead, router.php defines
// ABSPATH as the per-test tree of symlinks ($APP_STATE_DIR/wp) whose
// wp-config.php is this file, so WordPress itself stays untouched.
$idlegate_state = getenv('APP_STATE_DIR');
define('DB_NAME', 'wordpress');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:' . $idlegate_state . '/mysql.sock'); // MariaDB on a unix socket only
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
// Fixed test keys; a real site has its own.
define('AUTH_KEY', 'idlegate-test-auth-key');
define('SECURE_AUTH_KEY', 'idlegate-test-secure-auth-key');
define('LOGGED_IN_KEY', 'idlegate-test-logged-in-key');
define('NONCE_KEY', 'idlegate-test-nonce-key');
define('AUTH_SALT', 'idlegate-test-auth-salt');
define('SECURE_AUTH_SALT', 'idlegate-test-secure-auth-salt');
define('LOGGED_IN_SALT', 'idlegate-test-logged-in-salt');
define('NONCE_SALT', 'idlegate-test-nonce-salt');
// The site URL follows the request's Host, so the same site answers directly
// and through a proxy on another port. COOKIEHASH is md5 of this URL.
$idlegate_host = isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : '127.0.0.1';
define('WP_HOME', 'http://' . $idlegate_host);
define('WP_SITEURL', 'http://' . $idlegate_host);
define('WP_CONTENT_DIR', '/usr/share/wordpress/wp-content');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('WP_DEBUG', false);
$table_prefix = 'wp_';
require_once ABSPATH . 'wp-settings.php';
