<?php

namespace Idlegate\Laravel\Events;

use Illuminate\Contracts\Auth\Authenticatable;

/**
 * One verified idlegate webhook. $data is the payload's "data" object as
 * DESIGN.md describes it (session, zone, user, reason, started_at,
 * last_activity_at, ended_at, duration_seconds, requests); the typed
 * properties are read from it.
 */
abstract class SessionEvent
{
    /** The webhook-id: stable across redeliveries. */
    public string $webhookId;

    /** "session.ended" or "session.started". */
    public string $type;

    /** The payload's "timestamp". */
    public ?string $timestamp;

    /** The whole "data" object. */
    public array $data;

    /** The guard the user was resolved with. */
    public string $guard;

    /** The user named by data.user, when the guard's provider knows them. */
    public ?Authenticatable $user;

    /** Short hex name of the session (never the session ID itself). */
    public string $session;

    public string $zone;

    /** data.user: the identifier the user header carried; null for anonymous sessions. */
    public ?string $userId;

    public ?string $startedAt;

    public ?string $lastActivityAt;

    public int $requests;

    public function __construct(string $webhookId, array $payload, string $guard, ?Authenticatable $user)
    {
        $this->webhookId = $webhookId;
        $this->type = (string) ($payload['type'] ?? '');
        $this->timestamp = isset($payload['timestamp']) ? (string) $payload['timestamp'] : null;
        $this->data = is_array($payload['data'] ?? null) ? $payload['data'] : [];
        $this->guard = $guard;
        $this->user = $user;
        $this->session = (string) ($this->data['session'] ?? '');
        $this->zone = (string) ($this->data['zone'] ?? '');
        $u = $this->data['user'] ?? null;
        $this->userId = ($u === null || $u === '') ? null : (string) $u;
        $this->startedAt = $this->data['started_at'] ?? null;
        $this->lastActivityAt = $this->data['last_activity_at'] ?? null;
        $this->requests = (int) ($this->data['requests'] ?? 0);
    }
}
