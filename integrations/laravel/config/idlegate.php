<?php

// idlegate kit configuration. Publish with
//   php artisan vendor:publish --tag=idlegate-config
// Every value can also be set from the environment.

return [
    // The Standard Webhooks secret idlegate signs with: the `secret` of the
    // Caddyfile's `webhook` block, "whsec_" + base64 of at least 24 bytes.
    'secret' => env('IDLEGATE_WEBHOOK_SECRET', ''),

    // Where idlegate posts its webhooks: the path of the Caddyfile's
    // `webhook <url>`. The route runs without the `web` group: no session,
    // no cookies, no CSRF check.
    'path' => env('IDLEGATE_WEBHOOK_PATH', '/idlegate/webhook'),

    // Extra middleware (names or classes) for the webhook route, e.g. 'throttle:60,1'.
    'route_middleware' => [],

    // How far webhook-timestamp may be from now, in seconds.
    'tolerance' => (int) env('IDLEGATE_WEBHOOK_TOLERANCE', 300),

    // The table that remembers each delivered webhook-id, so a redelivery
    // is answered 200 and not applied twice. Created by the kit's migration.
    'table' => env('IDLEGATE_WEBHOOK_TABLE', 'idlegate_webhooks'),

    // The response header idlegate reads the signed-in user from: the
    // Caddyfile's `user_header`. idlegate strips it before the browser sees it.
    'user_header' => env('IDLEGATE_USER_HEADER', 'X-Idle-User'),

    // The guard whose user goes into the header, and for which
    // Illuminate\Auth\Events\Logout is dispatched. null: the default guard.
    'guard' => env('IDLEGATE_GUARD'),

    // Add the header middleware to this middleware group (null: add it yourself).
    'middleware_group' => 'web',

    // The end reasons for which Laravel's own Logout event is dispatched.
    // "logout" is left out on purpose: idlegate reports it after the app's own
    // Auth::logout() already fired Logout (the user clicked "Log out").
    'logout_reasons' => ['idle', 'absolute', 'revoked'],

    // Optional bookkeeping for apps that have none: a migration adds
    // last_logout_at and online_seconds to the users table, and a listener
    // fills them from every session.ended (all reasons).
    'presence' => [
        'enabled' => (bool) env('IDLEGATE_PRESENCE', false),
        'table' => 'users',
        'key' => 'id', // the column holding the identifier of the user header
    ],

    // Optional: Caddy's admin endpoint, so `php artisan idlegate:check` can
    // compare this configuration with idlegate's (secret, header, webhook path).
    'caddy_admin' => env('IDLEGATE_CADDY_ADMIN'),
];
