<?php

namespace Idlegate\Laravel\Http;

use Closure;
use Illuminate\Contracts\Auth\Factory as Auth;
use Illuminate\Http\Request;

/**
 * Puts the signed-in user's identifier on the response, in the header the
 * Caddyfile's `user_header` names. It reads the guard *after* the handler
 * ran, so the login response already names the new user and the logout
 * response names none. idlegate strips the header before the browser sees it.
 */
class AddUserHeader
{
    private Auth $auth;

    public function __construct(Auth $auth)
    {
        $this->auth = $auth;
    }

    public function handle(Request $request, Closure $next)
    {
        $response = $next($request);
        $header = (string) config('idlegate.user_header', 'X-Idle-User');
        if ($header === '' || ! isset($response->headers)) {
            return $response;
        }
        $guard = $this->auth->guard(config('idlegate.guard'));
        // Never let a header the app set by accident name someone else.
        $response->headers->remove($header);
        if ($guard->check()) {
            $response->headers->set($header, (string) $guard->id());
        }

        return $response;
    }
}
