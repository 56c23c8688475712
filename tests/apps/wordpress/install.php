<?php
// php install.php: WordPress's own wp_install() into the empty DB of
// $APP_STATE_DIR (run by start once per checkout, for the template).
$_SERVER['HTTP_HOST'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
define('ABSPATH', getenv('APP_STATE_DIR') . '/wp/');
define('WP_INSTALLING', true);
require ABSPATH . 'wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$r = wp_install('idlegate test blog', 'alice', 'alice@example.test', false, '', 'alice-password');
$bob = wp_insert_user(['user_login' => 'bob', 'user_pass' => 'bob-password', 'user_email' => 'bob@example.test', 'role' => 'editor']);
if (is_wp_error($bob)) { fwrite(STDERR, $bob->get_error_message() . "\n"); exit(1); }
echo "installed: alice=" . $r['user_id'] . " bob=" . $bob . "\n";
