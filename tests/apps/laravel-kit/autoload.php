<?php
// Laravel 8.83 from Debian's php-laravel-framework (/usr/share/php), plus
// Composer's autoloader for what `composer install` put into vendor/: the
// idlegate kit, from the path repository in composer.json. Laravel's package
// discovery reads vendor/composer/installed.json and registers the kit's
// service provider; config/app.php does not name it.
require_once '/usr/share/php/Illuminate/autoload.php';
require_once __DIR__ . '/vendor/autoload.php';

// The app's own classes. This variant only holds what differs from the
// plain test app (tests/apps/laravel): its HTTP kernel, events, listeners,
// routes; the login/home controllers, the User model and the seeder are
// that app's.
spl_autoload_register(function (string $class): void {
    static $prefixes = [
        'App\\' => [__DIR__ . '/app/', __DIR__ . '/../laravel/app/'],
        'Database\\Seeders\\' => [__DIR__ . '/../laravel/database/seeders/'],
    ];
    foreach ($prefixes as $prefix => $dirs) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            foreach ($dirs as $dir) {
                $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                    return;
                }
            }
            return;
        }
    }
});
