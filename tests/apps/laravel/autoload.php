<?php
// No composer here: Laravel 8.83 comes from Debian's php-laravel-framework,
// whose autoload.php pulls in Illuminate, Symfony, Carbon, Monolog, ... from
// /usr/share/php. The app's own classes are mapped PSR-4 style below.
require_once '/usr/share/php/Illuminate/autoload.php';

spl_autoload_register(function (string $class): void {
    static $prefixes = [
        'App\\' => __DIR__ . '/app/',
        'Database\\Seeders\\' => __DIR__ . '/database/seeders/',
    ];
    foreach ($prefixes as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) require $file;
            return;
        }
    }
});
