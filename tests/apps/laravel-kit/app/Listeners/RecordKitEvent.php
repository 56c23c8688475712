<?php

namespace App\Listeners;

use Idlegate\Laravel\Events\SessionEvent;

/** Test probe: appends the kit's events to $APP_STATE_DIR/events.jsonl. */
class RecordKitEvent
{
    public function handle(SessionEvent $event): void
    {
        $line = json_encode(['id' => $event->webhookId, 'type' => $event->type, 'data' => (object) $event->data,
            'user_resolved' => $event->user !== null, 'guard' => $event->guard]);
        file_put_contents(config('idlegate.events_file'), $line . "\n", FILE_APPEND | LOCK_EX);
    }
}
