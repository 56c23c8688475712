<?php

namespace Idlegate\Laravel\Http;

use Idlegate\Laravel\Events\SessionEnded;
use Idlegate\Laravel\Events\SessionStarted;
use Idlegate\Laravel\Idlegate;
use Idlegate\Laravel\Signature;
use Illuminate\Auth\Events\Logout;
use Illuminate\Contracts\Auth\Authenticatable;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Auth;
use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\DB;

/**
 * idlegate's webhook receiver: Standard Webhooks verification, then — once
 * per webhook-id, inside one database transaction with the idempotency
 * record — the kit's event and, for an idle/absolute/revoked end, Laravel's
 * own Logout. The answer is 2xx only after every listener has run; a
 * listener that throws rolls the record back, so idlegate's retry applies
 * the event again instead of losing it.
 */
class WebhookController
{
    /** Cache key of the last refused delivery, read by idlegate:check. */
    public const LAST_REFUSAL = 'idlegate:last_refusal';

    public function __invoke(Request $request): JsonResponse
    {
        $secret = (string) config('idlegate.secret');
        try {
            $key = Signature::key($secret);
        } catch (\InvalidArgumentException $e) {
            return $this->refuse(500, 'IDLEGATE_WEBHOOK_SECRET is unusable: ' . $e->getMessage());
        }
        $id = (string) $request->header('webhook-id');
        $problem = Signature::verify($key, $id, (string) $request->header('webhook-timestamp'),
            (string) $request->header('webhook-signature'), $request->getContent(), (int) config('idlegate.tolerance', 300));
        if ($problem !== null) {
            return $this->refuse(400, $problem);
        }
        $payload = json_decode($request->getContent(), true);
        if (! is_array($payload) || ! is_string($payload['type'] ?? null)) {
            return $this->refuse(400, 'the body is not an idlegate event');
        }

        $guard = (string) (config('idlegate.guard') ?: config('auth.defaults.guard'));
        $isNew = DB::transaction(function () use ($id, $payload, $guard) {
            $inserted = DB::table(config('idlegate.table', 'idlegate_webhooks'))->insertOrIgnore([
                'id' => $id,
                'type' => $payload['type'],
                'payload' => json_encode($payload),
                'received_at' => now(),
            ]);
            if ($inserted === 0) {
                return false; // a redelivery: already applied
            }
            $this->apply($id, $payload, $guard);

            return true;
        });

        return $isNew ? new JsonResponse(['ok' => true]) : new JsonResponse(['ok' => true, 'duplicate' => true]);
    }

    private function apply(string $id, array $payload, string $guard): void
    {
        $data = is_array($payload['data'] ?? null) ? $payload['data'] : [];
        $user = $this->user($guard, $data['user'] ?? null);
        switch ($payload['type']) {
            case 'session.ended':
                $end = new SessionEnded($id, $payload, $guard, $user);
                event($end);
                if ($user !== null && in_array($end->reason, (array) config('idlegate.logout_reasons', []), true)) {
                    Idlegate::during($end, fn () => event(new Logout($guard, $user)));
                }
                break;
            case 'session.started':
                event(new SessionStarted($id, $payload, $guard, $user));
                break;
            // Types a newer idlegate may send are recorded and acknowledged.
        }
    }

    private function user(string $guard, $id): ?Authenticatable
    {
        if ($id === null || $id === '') {
            return null;
        }
        $provider = config("auth.guards.$guard.provider");

        return Auth::createUserProvider($provider)?->retrieveById((string) $id);
    }

    private function refuse(int $status, string $reason): JsonResponse
    {
        try {
            Cache::put(self::LAST_REFUSAL, ['at' => now()->toIso8601String(), 'status' => $status, 'reason' => $reason], 86400 * 7);
        } catch (\Throwable $e) {
            // No usable cache: the answer still says why.
        }

        return new JsonResponse(['error' => $reason], $status);
    }
}
