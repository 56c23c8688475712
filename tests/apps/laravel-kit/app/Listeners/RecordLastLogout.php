<?php

namespace App\Listeners;

use Idlegate\Laravel\Idlegate;
use Illuminate\Auth\Events\Logout;
use Illuminate\Support\Facades\DB;

/**
 * An ordinary listener of Laravel's Logout event, as apps have them: it
 * records the user's last logout. With the idlegate kit it also runs when a
 * session expires at the proxy; Idlegate::ending() then says why and how
 * long the user was online.
 */
class RecordLastLogout
{
    public function handle(Logout $event): void
    {
        $end = Idlegate::ending();
        DB::table('last_logouts')->insert([
            'user_id' => $event->user->getAuthIdentifier(),
            'guard' => $event->guard,
            'reason' => $end ? $end->reason : 'app',
            'duration_seconds' => $end ? $end->durationSeconds : null,
            'ended_at' => $end ? $end->endedAt : null,
            'at' => now(),
        ]);
    }
}
