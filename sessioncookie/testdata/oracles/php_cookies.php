<?php
// PHP oracle: PHP 8.2's own cookie parsing ($_COOKIE), through a real
// `php -S` built-in server as tests/apps/php runs it. Starts one server
// (stopped at EOF, and by tests/apps/lib/supervise when this script dies or
// after 10 minutes) and sends each input as a raw HTTP/1.1 request whose
// Cookie lines are the input's lines, byte for byte.
declare(strict_types=1);

function fail(string $msg): never { fwrite(STDERR, "php_cookies: $msg\n"); exit(1); }

// The Go test passes a port from internal/testnet (below the ephemeral
// range); by hand, any free one.
$port = (int)getenv('PHP_COOKIES_PORT');
if ($port === 0) {
    $probe = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr) ?: fail($errstr);
    $port = (int)substr(strrchr(stream_socket_get_name($probe, false), ':'), 1);
    fclose($probe);
}
$supervise = __DIR__ . '/../../../tests/apps/lib/supervise';
// The app's php.ini (Debian's cli one) and PHP's defaults for the input
// limits (max_input_vars counts cookies too).
$cmd = [$supervise, '600', PHP_BINARY, '-S', "127.0.0.1:$port", __DIR__ . '/php_router.php'];
$server = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
$server ?: fail('cannot start php -S');
register_shutdown_function(function () use ($server) { proc_terminate($server); proc_close($server); });

$deadline = microtime(true) + 20;
while (!($c = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 1))) {
    if (microtime(true) > $deadline) fail("php -S did not listen on $port: $errstr");
    usleep(20000);
}
fclose($c);

function ask(int $port, array $lines): string {
    $req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    foreach ($lines as $l) $req .= 'Cookie: ' . mb_convert_encoding($l, 'ISO-8859-1', 'UTF-8') . "\r\n";
    $req .= "Connection: close\r\n\r\n";
    $c = stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 10) ?: fail("connect: $errstr");
    fwrite($c, $req);
    $resp = stream_get_contents($c);
    fclose($c);
    [$head, $body] = explode("\r\n\r\n", $resp, 2) + ['', ''];
    $status = explode(' ', $head, 3)[1] ?? '';
    if ($status !== '200') return json_encode(['error' => "HTTP $status"]);
    return $body;
}

while (($line = fgets(STDIN)) !== false) {
    $lines = json_decode($line, true);
    echo (is_array($lines) ? ask($port, $lines) : json_encode(['error' => 'bad input'])), "\n";
    fflush(STDOUT);
}
