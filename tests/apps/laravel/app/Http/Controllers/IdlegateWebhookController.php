<?php

namespace App\Http\Controllers;

use App\Events\IdleSessionEnded;
use App\Models\User;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;

/** Receiver for idlegate's Standard Webhooks ("session.ended"). */
class IdlegateWebhookController
{
    const TOLERANCE_SECONDS = 300;

    public function receive(Request $request)
    {
        $secret = (string) config('idlegate.webhook_secret');
        if ($secret === '') {
            return response()->json(['error' => 'IDLEGATE_WEBHOOK_SECRET is not set'], 500);
        }
        if ($problem = self::verify($secret, $request)) {
            return response()->json(['error' => $problem], 400);
        }
        $payload = json_decode($request->getContent(), true);
        if (! is_array($payload) || ! is_string($payload['type'] ?? null)) {
            return response()->json(['error' => 'bad payload'], 400);
        }

        $id = $request->header('webhook-id');
        $event = ['id' => $id, 'type' => $payload['type'], 'data' => $payload['data'] ?? (object) []];

        $isNew = DB::transaction(function () use ($event) {
            // The primary key on webhook-id makes redeliveries no-ops.
            if (DB::table('idlegate_webhooks')->insertOrIgnore(['id' => $event['id'], 'type' => $event['type'],
                'payload' => json_encode($event['data']), 'received_at' => now()]) === 0) {
                return false;
            }
            if ($event['type'] === 'session.ended') {
                event(new IdleSessionEnded($event['id'], (array) $event['data']));
            }

            return true;
        });
        if (! $isNew) {
            return response()->json(['ok' => true, 'duplicate' => true]);
        }
        file_put_contents(config('idlegate.events_file'), json_encode($event) . "\n", FILE_APPEND | LOCK_EX);

        return response()->json(['ok' => true]);
    }

    /** Standard Webhooks verification; returns null when authentic, else the reason. */
    public static function verify(string $secret, Request $request): ?string
    {
        $id = (string) $request->header('webhook-id');
        $ts = (string) $request->header('webhook-timestamp');
        $signatures = (string) $request->header('webhook-signature');
        if ($id === '' || $ts === '' || $signatures === '') {
            return 'missing webhook headers';
        }
        if (! ctype_digit($ts)) {
            return 'bad timestamp';
        }
        if (abs(time() - (int) $ts) > self::TOLERANCE_SECONDS) {
            return 'timestamp outside tolerance';
        }
        $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
        $expected = base64_encode(hash_hmac('sha256', "$id.$ts." . $request->getContent(), (string) $key, true));
        foreach (explode(' ', $signatures) as $entry) {
            [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
            if ($version === 'v1' && hash_equals($expected, $sig)) {
                return null;
            }
        }

        return 'no matching signature';
    }

    public function events()
    {
        $file = config('idlegate.events_file');
        $lines = is_file($file) ? array_filter(explode("\n", file_get_contents($file)), 'strlen') : [];

        return response()->json(array_map(fn ($l) => json_decode($l), array_values($lines)));
    }

    public function users()
    {
        $out = [];
        foreach (User::orderBy('id')->get() as $u) {
            $out[(string) $u->id] = [
                'id' => (string) $u->id,
                'username' => $u->username,
                'last_logout_at' => $u->last_logout_at?->utc()->format('Y-m-d\TH:i:s\Z'),
                'online_seconds' => (int) $u->online_seconds,
            ];
        }

        return response()->json($out);
    }
}
