<?php

namespace Idlegate\Laravel;

use Idlegate\Laravel\Console\CheckCommand;
use Idlegate\Laravel\Events\SessionEnded;
use Idlegate\Laravel\Http\AddUserHeader;
use Idlegate\Laravel\Http\WebhookController;
use Idlegate\Laravel\Listeners\RecordPresence;
use Illuminate\Routing\Router;
use Illuminate\Support\Facades\Event;
use Illuminate\Support\ServiceProvider;

/**
 * Auto-discovered (composer.json extra.laravel.providers). Adds the user
 * header to the `web` group, registers the webhook route outside every
 * group (no session, no CSRF), the idempotency migration, the check command
 * and, when idlegate.presence.enabled, the presence migration and listener.
 */
class IdlegateServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->mergeConfigFrom(__DIR__ . '/../config/idlegate.php', 'idlegate');
    }

    public function boot(Router $router)
    {
        $config = $this->app['config'];

        if ($group = $config->get('idlegate.middleware_group')) {
            $router->pushMiddlewareToGroup($group, AddUserHeader::class);
        }

        if (! ($this->app->routesAreCached())) {
            $router->post($config->get('idlegate.path'), WebhookController::class)
                ->middleware((array) $config->get('idlegate.route_middleware', []))
                ->name('idlegate.webhook');
        }

        $this->loadMigrationsFrom(__DIR__ . '/../database/migrations');
        if ($config->get('idlegate.presence.enabled')) {
            $this->loadMigrationsFrom(__DIR__ . '/../database/presence');
            Event::listen(SessionEnded::class, RecordPresence::class);
        }

        if ($this->app->runningInConsole()) {
            $this->commands([CheckCommand::class]);
            $this->publishes([__DIR__ . '/../config/idlegate.php' => config_path('idlegate.php')], 'idlegate-config');
            $this->publishes([
                __DIR__ . '/../database/migrations' => database_path('migrations'),
                __DIR__ . '/../database/presence' => database_path('migrations'),
            ], 'idlegate-migrations');
        }
    }
}
