<?php
// php -S router for Debian's DokuWiki (/usr/share/dokuwiki), unchanged. It
// only defines DOKU_CONF (which Debian's inc/preload.php leaves alone when it
// is already defined), so this test's conf/ and data/ are used instead of
// /etc/dokuwiki and /var/lib/dokuwiki. DOKU_TEST_BASE is the URL prefix the
// wiki is served under: "/" or a sub-path such as "/dokuwiki/".
$base = getenv('DOKU_TEST_BASE') ?: '/';
$state = getenv('APP_STATE_DIR');
$uri = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
if ($uri . '/' === $base) {
    header('Location: ' . $base, true, 301);
    return true;
}
if (strncmp($uri, $base, strlen($base)) !== 0) {
    http_response_code(404);
    echo "not found\n";
    return true;
}
$rel = substr($uri, strlen($base));
if ($rel === '' || substr($rel, -1) === '/') {
    $rel .= ($rel === '' ? 'doku.php' : 'index.php');
}
$file = realpath('/usr/share/dokuwiki/' . $rel);
if ($file === false || strncmp($file, '/usr/share/dokuwiki/', 20) !== 0 || !is_file($file)) {
    http_response_code(404);
    echo "not found\n";
    return true;
}
if (substr($file, -4) !== '.php') {
    return false; // static file: php -S serves it from the document root
}
define('DOKU_CONF', $state . '/conf/');
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = $base . $rel;
$_SERVER['SCRIPT_FILENAME'] = $file;
chdir(dirname($file));
require $file;
