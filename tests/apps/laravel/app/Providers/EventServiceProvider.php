<?php

namespace App\Providers;

use App\Events\IdleSessionEnded;
use App\Listeners\RecordIdleLogout;
use Illuminate\Foundation\Support\Providers\EventServiceProvider as ServiceProvider;

class EventServiceProvider extends ServiceProvider
{
    protected $listen = [
        IdleSessionEnded::class => [
            RecordIdleLogout::class,
        ],
    ];
}
