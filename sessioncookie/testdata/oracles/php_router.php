<?php
// php -S router for php_cookies.php: answers every request with $_COOKIE as
// JSON pairs, strings as one code point per byte (see README.md).
function bytes(string $s): string { return mb_convert_encoding($s, 'UTF-8', 'ISO-8859-1'); }
function value($v) {
    if (is_string($v)) return bytes($v);
    if (is_array($v)) {
        $pairs = [];
        foreach ($v as $k => $x) $pairs[] = [bytes((string)$k), value($x)];
        return ['array' => $pairs];
    }
    return ['type' => gettype($v)];
}
$out = [];
foreach ($_COOKIE as $k => $v) $out[] = [bytes((string)$k), value($v)];
header('Content-Type: application/json');
echo json_encode($out, JSON_THROW_ON_ERROR);
