<?php

namespace App\Http\Middleware;

use Closure;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Auth;

/**
 * The idlegate integration: name the signed-in user on every response.
 * Checked after the controller ran, so the login response already carries the
 * new user and the logout response (after Auth::logout()) carries none.
 * idlegate reads X-Idle-User and strips it before the browser sees it.
 */
class SetIdleUserHeader
{
    public function handle(Request $request, Closure $next)
    {
        $response = $next($request);

        if (Auth::check()) {
            $response->headers->set('X-Idle-User', (string) Auth::id());
        }

        return $response;
    }
}
