<?php

$app = new Illuminate\Foundation\Application(dirname(__DIR__));

// Everything Laravel writes (sessions, compiled views, logs, the sqlite DB)
// goes to the per-test APP_STATE_DIR, never into the repository.
if ($state = getenv('APP_STATE_DIR')) {
    $app->useStoragePath($state . '/storage');
}

$app->singleton(Illuminate\Contracts\Http\Kernel::class, App\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Console\Kernel::class, App\Console\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, App\Exceptions\Handler::class);

return $app;
