<?php

namespace Idlegate\Laravel\Events;

use Illuminate\Contracts\Auth\Authenticatable;

/**
 * idlegate ended a session: dispatched for every verified, first-seen
 * "session.ended", whatever the reason, before Laravel's own
 * Illuminate\Auth\Events\Logout (which is dispatched only for the reasons in
 * idlegate.logout_reasons).
 */
class SessionEnded extends SessionEvent
{
    /** "idle", "absolute", "logout" or "revoked". */
    public string $reason;

    public ?string $endedAt;

    /** Online time: from login (or start) to the last activity. */
    public int $durationSeconds;

    public function __construct(string $webhookId, array $payload, string $guard, ?Authenticatable $user)
    {
        parent::__construct($webhookId, $payload, $guard, $user);
        $this->reason = (string) ($this->data['reason'] ?? '');
        $this->endedAt = $this->data['ended_at'] ?? null;
        $this->durationSeconds = (int) round((float) ($this->data['duration_seconds'] ?? 0));
    }
}
