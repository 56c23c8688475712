<?php
// php -S router for Debian's WordPress (/usr/share/wordpress), unchanged:
// ABSPATH is this test's tree of symlinks, whose wp-config.php is ours.
$root = getenv('APP_STATE_DIR') . '/wp/';
define('ABSPATH', $root);
$uri = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
$path = $root . ltrim($uri, '/');
if (is_dir($path)) {
    if (substr($uri, -1) !== '/') {
        header('Location: ' . $uri . '/', true, 301);
        return true;
    }
    $uri .= 'index.php';
    $path .= 'index.php';
}
if (!is_file($path)) {
    $uri = '/index.php';
    $path = $root . 'index.php';
}
if (substr($path, -4) !== '.php') {
    return false; // static file: php -S serves it from the document root
}
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = $uri;
$_SERVER['SCRIPT_FILENAME'] = $path;
chdir(dirname(realpath($path)));
require $path;
