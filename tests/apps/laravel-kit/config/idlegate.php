<?php

// The kit's defaults (integrations/laravel/config/idlegate.php) come from the
// package; this file only adds the test probe's events file.
return [
    'secret' => env('IDLEGATE_WEBHOOK_SECRET', ''),
    'events_file' => env('APP_STATE_DIR', storage_path()) . '/events.jsonl',
];
