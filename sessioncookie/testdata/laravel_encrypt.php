<?php
// laravel_encrypt.php produces Laravel session cookies with the real
// Illuminate code, as test vectors for sessioncookie.Laravel.
//
// Input (stdin): a JSON array of cases
//   [{"app_key": "base64:...", "cipher": "AES-256-CBC",
//     "cookie_name": "laravel_session", "session_id": "<40 alnum>"}, ...]
// Output (stdout): the same array, each case extended with
//   "set_cookie":   the Set-Cookie header value EncryptCookies produced,
//   "cookie_value": its value as the browser sends it back (URL-encoded),
//   "php_decrypted": what EncryptCookies makes of that value on the next
//                    request (must equal session_id).
//
// Laravel is loaded from Debian's php-laravel-framework package, whose
// per-component autoloaders live under /usr/share/php/Illuminate/<Component>/
// autoload.php and find their dependencies (Illuminate/Contracts,
// Illuminate/Support, Symfony/Component/HttpFoundation, ...) through PHP's
// include_path, which on Debian contains /usr/share/php.

error_reporting(E_ALL);
set_error_handler(function ($no, $str, $file, $line) {
    throw new ErrorException($str, 0, $no, $file, $line);
});

set_include_path(get_include_path() . PATH_SEPARATOR . '/usr/share/php');
require_once 'Illuminate/Encryption/autoload.php';
require_once 'Illuminate/Cookie/autoload.php';

use Illuminate\Cookie\Middleware\EncryptCookies;
use Illuminate\Encryption\Encrypter;
use Illuminate\Support\Str;
use Symfony\Component\HttpFoundation\Cookie;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

// appKey decodes APP_KEY the way EncryptionServiceProvider::key does.
function appKey(string $key): string
{
    if (Str::startsWith($key, $prefix = 'base64:')) {
        return base64_decode(Str::after($key, $prefix));
    }
    return $key;
}

$cases = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$out = [];
foreach ($cases as $c) {
    $encrypter = new Encrypter(appKey($c['app_key']), $c['cipher']);
    $middleware = new EncryptCookies($encrypter);

    // Outgoing: the app sets its session cookie; the middleware encrypts it.
    $response = $middleware->handle(Request::create('/'), function () use ($c) {
        $r = new Response('ok');
        $r->headers->setCookie(new Cookie(
            $c['cookie_name'], $c['session_id'], time() + 7200, '/', null, false, true, false, 'lax'
        ));
        return $r;
    });
    $setCookie = $response->headers->all('set-cookie')[0];

    // What the browser sends back: the value exactly as it appeared in
    // Set-Cookie (still URL-encoded).
    $pair = explode(';', $setCookie, 2)[0];
    $cookieValue = substr($pair, strlen($c['cookie_name']) + 1);

    // Incoming: PHP URL-decodes cookie values ($_COOKIE); EncryptCookies then
    // decrypts and strips the prefix.
    $seen = null;
    $request = Request::create('/', 'GET', [], [$c['cookie_name'] => urldecode($cookieValue)]);
    $middleware->handle($request, function ($req) use ($c, &$seen) {
        $seen = $req->cookies->get($c['cookie_name']);
        return new Response('ok');
    });

    $c['set_cookie'] = $setCookie;
    $c['cookie_value'] = $cookieValue;
    $c['php_decrypted'] = $seen;
    $out[] = $c;
}
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
