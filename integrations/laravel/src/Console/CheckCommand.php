<?php

namespace Idlegate\Laravel\Console;

use Idlegate\Laravel\Http\AddUserHeader;
use Idlegate\Laravel\Http\WebhookController;
use Idlegate\Laravel\Signature;
use Illuminate\Console\Command;
use Illuminate\Routing\Router;
use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\Schema;

/**
 * php artisan idlegate:check [--caddy=http://127.0.0.1:2019]
 *
 * Is the app configured consistently with itself and, given Caddy's admin
 * endpoint, with idlegate? One line per check ("ok", "warn" or "FAIL");
 * the exit status is 1 when any check fails. Secrets are never printed.
 */
class CheckCommand extends Command
{
    protected $signature = 'idlegate:check {--caddy= : Caddy admin endpoint, to compare with idlegate\'s own configuration}';

    protected $description = 'Check the idlegate kit configuration (secret, webhook route, user header, tables)';

    private int $problems = 0;

    public function handle(Router $router): int
    {
        $key = $this->checkSecret();
        $path = $this->checkRoute($router);
        $header = $this->checkHeader($router);
        $this->checkGuard();
        $this->checkTables();
        $this->checkLastRefusal();
        $caddy = $this->option('caddy') ?: config('idlegate.caddy_admin');
        if ($caddy) {
            $this->checkCaddy((string) $caddy, $key, $path, $header);
        }
        if ($this->problems > 0) {
            $this->line(sprintf('idlegate:check: %d problem(s); webhooks will not be applied until they are fixed.', $this->problems));

            return 1;
        }
        $this->line('idlegate:check: all checks passed.');

        return 0;
    }

    private function checkSecret(): ?string
    {
        $secret = (string) config('idlegate.secret');
        if ($secret === '') {
            $this->problem('secret', 'IDLEGATE_WEBHOOK_SECRET (idlegate.secret) is not set; every webhook is answered 500');

            return null;
        }
        try {
            $key = Signature::key($secret);
        } catch (\InvalidArgumentException $e) {
            $this->problem('secret', 'IDLEGATE_WEBHOOK_SECRET is malformed: ' . $e->getMessage() . '; every webhook is answered 500');

            return null;
        }
        $this->ok('secret', sprintf('whsec_ secret set (%d-byte key)', strlen($key)));

        return $key;
    }

    private function checkRoute(Router $router): ?string
    {
        $route = $router->getRoutes()->getByName('idlegate.webhook');
        if ($route === null) {
            $this->problem('route', 'no route named idlegate.webhook: is the route cache stale? run php artisan route:clear');

            return null;
        }
        $path = '/' . ltrim($route->uri(), '/');
        $middleware = $route->gatherMiddleware();
        $groups = $router->getMiddlewareGroups();
        foreach ($middleware as $m) {
            $names = array_merge([$m], $groups[$m] ?? []);
            foreach ($names as $name) {
                if (is_string($name) && (stripos($name, 'VerifyCsrfToken') !== false || stripos($name, 'StartSession') !== false)) {
                    $this->problem('route', "POST $path runs $name: idlegate's webhook carries no CSRF token or session; keep the route outside the web group");

                    return $path;
                }
            }
        }
        $this->ok('route', "POST $path -> " . WebhookController::class . ' (no session, no CSRF)');

        return $path;
    }

    private function checkHeader(Router $router): string
    {
        $header = (string) config('idlegate.user_header');
        if ($header === '' || ! preg_match('/^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$/', $header)) {
            $this->problem('header', "idlegate.user_header \"$header\" is not a valid header name");

            return $header;
        }
        $group = config('idlegate.middleware_group');
        $groups = $router->getMiddlewareGroups();
        if ($group && ! in_array(AddUserHeader::class, $groups[$group] ?? [], true)) {
            $this->problem('header', "the user-header middleware is not in the \"$group\" group");
        } elseif (! $group) {
            $this->notice('header', 'idlegate.middleware_group is null: add ' . AddUserHeader::class . ' to your routes yourself');
        } else {
            $this->ok('header', "$header on every \"$group\" response of a signed-in user (Caddyfile: user_header $header)");
        }

        return $header;
    }

    private function checkGuard(): void
    {
        $guard = (string) (config('idlegate.guard') ?: config('auth.defaults.guard'));
        if (! is_array(config("auth.guards.$guard"))) {
            $this->problem('guard', "guard \"$guard\" is not configured in config/auth.php");

            return;
        }
        $this->ok('guard', "guard \"$guard\" (provider \"" . config("auth.guards.$guard.provider") . '")');
    }

    private function checkTables(): void
    {
        $table = (string) config('idlegate.table', 'idlegate_webhooks');
        try {
            $has = Schema::hasTable($table);
        } catch (\Throwable $e) {
            $this->problem('database', 'cannot reach the database: ' . $e->getMessage());

            return;
        }
        if (! $has) {
            $this->problem('database', "table $table is missing: run php artisan migrate");
        } else {
            $this->ok('database', "idempotency table $table");
        }
        if (config('idlegate.presence.enabled')) {
            $users = (string) config('idlegate.presence.table', 'users');
            if (! Schema::hasColumn($users, 'last_logout_at') || ! Schema::hasColumn($users, 'online_seconds')) {
                $this->problem('presence', "$users.last_logout_at / online_seconds are missing: run php artisan migrate");
            } else {
                $this->ok('presence', "$users.last_logout_at and $users.online_seconds are kept");
            }
        }
    }

    private function checkLastRefusal(): void
    {
        try {
            $last = Cache::get(WebhookController::LAST_REFUSAL);
        } catch (\Throwable $e) {
            return;
        }
        if (is_array($last)) {
            $this->notice('deliveries', sprintf('last refused webhook at %s: %d %s', $last['at'] ?? '?', $last['status'] ?? 0, $last['reason'] ?? '?'));
        }
    }

    private function checkCaddy(string $admin, ?string $key, ?string $path, string $header): void
    {
        $url = rtrim($admin, '/') . '/config/';
        $ctx = stream_context_create(['http' => ['timeout' => 5, 'ignore_errors' => true]]);
        $body = @file_get_contents($url, false, $ctx);
        if ($body === false) {
            $this->problem('caddy', "cannot read $url");

            return;
        }
        $handlers = [];
        $this->collect(json_decode($body, true), $handlers);
        $mine = [];
        foreach ($handlers as $h) {
            $hook = (string) ($h['webhook']['url'] ?? '');
            if ($path !== null && $hook !== '' && rtrim((string) parse_url($hook, PHP_URL_PATH), '/') === rtrim($path, '/')) {
                $mine[] = $h;
            }
        }
        if ($handlers === []) {
            $this->problem('caddy', "no idle_session handler in the configuration at $admin");

            return;
        }
        if ($mine === []) {
            $this->problem('caddy', sprintf('none of the %d idle_session handler(s) posts its webhook to %s', count($handlers), $path ?? '(no route)'));

            return;
        }
        foreach ($mine as $h) {
            $zone = (string) (($h['name'] ?? '') ?: ($h['cookie'] ?? '?'));
            try {
                $theirs = Signature::key((string) ($h['webhook']['secret'] ?? ''));
            } catch (\InvalidArgumentException $e) {
                $theirs = null;
            }
            if ($key !== null && ! hash_equals($key, (string) $theirs)) {
                $this->problem('caddy', "zone $zone: IDLEGATE_WEBHOOK_SECRET differs from the secret idlegate signs with; every webhook is refused with 400 (no matching signature)");
            } elseif ($key !== null) {
                $this->ok('caddy', "zone $zone: same webhook secret as idlegate, webhook " . $h['webhook']['url']);
            }
            $theirHeader = (string) ($h['user_header'] ?? '');
            if ($theirHeader === '') {
                $this->problem('caddy', "zone $zone: idlegate has no user_header; sessions will never name a user (add: user_header $header)");
            } elseif (strcasecmp($theirHeader, $header) !== 0) {
                $this->problem('caddy', "zone $zone: idlegate reads user_header $theirHeader, the app sends $header");
            } else {
                $this->ok('caddy', "zone $zone: user_header $theirHeader");
            }
        }
    }

    /** Walks a Caddy JSON config for idle_session handlers. */
    private function collect($node, array &$out): void
    {
        if (! is_array($node)) {
            return;
        }
        if (($node['handler'] ?? null) === 'idle_session') {
            $out[] = $node;
        }
        foreach ($node as $child) {
            $this->collect($child, $out);
        }
    }

    private function ok(string $what, string $msg): void
    {
        $this->line(sprintf('ok    %-10s %s', $what, $msg));
    }

    private function notice(string $what, string $msg): void
    {
        $this->line(sprintf('warn  %-10s %s', $what, $msg));
    }

    private function problem(string $what, string $msg): void
    {
        $this->problems++;
        $this->line(sprintf('FAIL  %-10s %s', $what, $msg));
    }
}
