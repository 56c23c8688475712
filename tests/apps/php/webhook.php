<?php
// Receiver for idlegate's Standard Webhooks ("session.ended").

const WEBHOOK_TOLERANCE_SECONDS = 300;

/** Returns null when the request is authentic, else the reason it is not. */
function verify_standard_webhook(string $secret, array $server, string $body): ?string
{
    $id = $server['HTTP_WEBHOOK_ID'] ?? '';
    $ts = $server['HTTP_WEBHOOK_TIMESTAMP'] ?? '';
    $signatures = $server['HTTP_WEBHOOK_SIGNATURE'] ?? '';
    if ($id === '' || $ts === '' || $signatures === '') return 'missing webhook headers';
    if (!ctype_digit($ts)) return 'bad timestamp';
    if (abs(time() - (int) $ts) > WEBHOOK_TOLERANCE_SECONDS) return 'timestamp outside tolerance';
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
    if ($key === false) return 'bad secret';
    $expected = base64_encode(hash_hmac('sha256', "$id.$ts.$body", $key, true));
    foreach (explode(' ', $signatures) as $entry) {
        [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
        if ($version === 'v1' && hash_equals($expected, $sig)) return null;
    }
    return 'no matching signature';
}

/** What a real app does with the event: mark the user offline, add online time. */
function on_session_ended(array &$presence, array $data): void
{
    $user = (string) ($data['user'] ?? '');
    if (!isset($presence[$user])) return; // anonymous or unknown
    $ended = strtotime((string) ($data['ended_at'] ?? ''));
    $presence[$user]['last_logout_at'] = $ended === false ? null : gmdate('Y-m-d\TH:i:s\Z', $ended);
    $presence[$user]['online_seconds'] += (int) round((float) ($data['duration_seconds'] ?? 0));
}

/** Shared state (events.jsonl, presence.json) under one flock: php -S runs several workers. */
function with_state(string $dir, callable $fn)
{
    $lock = fopen("$dir/state.lock", 'c');
    flock($lock, LOCK_EX);
    try {
        $presenceFile = "$dir/presence.json";
        $presence = is_file($presenceFile) ? json_decode(file_get_contents($presenceFile), true) : [];
        foreach (require __DIR__ . '/users.php' as $id => $u) {
            $presence[$id] ??= ['last_logout_at' => null, 'online_seconds' => 0];
        }
        $before = $presence;
        $result = $fn($presence);
        if ($presence !== $before) file_put_contents($presenceFile, json_encode($presence));
        return $result;
    } finally {
        flock($lock, LOCK_UN);
        fclose($lock);
    }
}

function read_events(string $dir): array
{
    $file = "$dir/events.jsonl";
    if (!is_file($file)) return [];
    $lines = array_filter(explode("\n", file_get_contents($file)), 'strlen');
    return array_map(fn ($l) => json_decode($l, true), array_values($lines));
}

function idlegate_webhook(string $dir): void
{
    $secret = getenv('IDLEGATE_WEBHOOK_SECRET') ?: '';
    if ($secret === '') { json_out(['error' => 'IDLEGATE_WEBHOOK_SECRET is not set'], 500); return; }
    $body = file_get_contents('php://input');
    if (($problem = verify_standard_webhook($secret, $_SERVER, $body)) !== null) {
        json_out(['error' => $problem], 400);
        return;
    }
    $payload = json_decode($body, true);
    if (!is_array($payload) || !is_string($payload['type'] ?? null)) { json_out(['error' => 'bad payload'], 400); return; }

    $event = ['id' => $_SERVER['HTTP_WEBHOOK_ID'], 'type' => $payload['type'], 'data' => $payload['data'] ?? new stdClass()];
    $duplicate = with_state($dir, function (array &$presence) use ($dir, $event) {
        foreach (read_events($dir) as $seen) {
            if ($seen['id'] === $event['id']) return true; // redelivery: already applied
        }
        file_put_contents("$dir/events.jsonl", json_encode($event) . "\n", FILE_APPEND);
        if ($event['type'] === 'session.ended') on_session_ended($presence, (array) $event['data']);
        return false;
    });
    json_out($duplicate ? ['ok' => true, 'duplicate' => true] : ['ok' => true]);
}
