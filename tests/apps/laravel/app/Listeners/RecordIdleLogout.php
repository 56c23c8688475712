<?php

namespace App\Listeners;

use App\Events\IdleSessionEnded;
use App\Models\User;
use Illuminate\Support\Carbon;

/**
 * The Logout listener Laravel never calls for timed-out sessions: idlegate's
 * webhook marks the user offline and adds the session's online time.
 */
class RecordIdleLogout
{
    public function handle(IdleSessionEnded $event): void
    {
        $user = User::find($event->data['user'] ?? null);
        if (! $user) {
            return; // anonymous session
        }

        $user->increment('online_seconds', (int) round($event->data['duration_seconds'] ?? 0), [
            'last_logout_at' => Carbon::parse($event->data['ended_at']),
        ]);
    }
}
