<?php

namespace Idlegate\Laravel\Listeners;

use Idlegate\Laravel\Events\SessionEnded;
use Illuminate\Support\Carbon;
use Illuminate\Support\Facades\DB;

/**
 * idlegate.presence.enabled: keeps last_logout_at and online_seconds on the
 * users table (added by the kit's presence migration) for every ended
 * session of a known user, whatever the reason. It runs in the webhook's
 * transaction, so a redelivery never counts a session twice.
 */
class RecordPresence
{
    public function handle(SessionEnded $event): void
    {
        if ($event->userId === null) {
            return; // anonymous session
        }
        $update = ['online_seconds' => DB::raw('online_seconds + ' . max(0, $event->durationSeconds))];
        if ($event->endedAt !== null) {
            $update['last_logout_at'] = Carbon::parse($event->endedAt)->utc();
        }
        DB::table(config('idlegate.presence.table', 'users'))
            ->where(config('idlegate.presence.key', 'id'), $event->userId)
            ->update($update);
    }
}
