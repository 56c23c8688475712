<?php

namespace App\Providers;

use App\Listeners\RecordKitEvent;
use App\Listeners\RecordLastLogout;
use Idlegate\Laravel\Events\SessionEnded;
use Idlegate\Laravel\Events\SessionStarted;
use Illuminate\Auth\Events\Logout;
use Illuminate\Foundation\Support\Providers\EventServiceProvider as ServiceProvider;

class EventServiceProvider extends ServiceProvider
{
    protected $listen = [
        // What the app had before idlegate: an ordinary Logout listener.
        Logout::class => [RecordLastLogout::class],
        // Test probes: the kit's own events, as GET /idlegate/events shows them.
        SessionEnded::class => [RecordKitEvent::class],
        SessionStarted::class => [RecordKitEvent::class],
    ];
}
