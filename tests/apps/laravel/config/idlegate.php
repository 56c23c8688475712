<?php

return [
    'webhook_secret' => env('IDLEGATE_WEBHOOK_SECRET', ''),
    'events_file' => env('APP_STATE_DIR', storage_path()) . '/events.jsonl',
];
