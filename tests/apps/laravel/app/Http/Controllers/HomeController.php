<?php

namespace App\Http\Controllers;

use Illuminate\Support\Facades\Auth;

class HomeController
{
    public function home()
    {
        if (Auth::guest()) {
            return redirect('/login');
        }

        return response(Html::page('Home', '<h1>Hello ' . e(Auth::user()->username) . '</h1>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<script>window.appScriptRan = true;</script>'));
    }

    public function poll()
    {
        return response()->json(['user' => Auth::check() ? (string) Auth::id() : null]);
    }

    public function me()
    {
        if (Auth::guest()) {
            return response()->json(['error' => 'unauthenticated', 'user' => null], 401);
        }

        return response()->json(['user' => (string) Auth::id(), 'username' => Auth::user()->username]);
    }
}
