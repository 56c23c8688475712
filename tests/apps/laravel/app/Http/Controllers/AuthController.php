<?php

namespace App\Http\Controllers;

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Auth;

class AuthController
{
    public function show()
    {
        return response(Html::loginForm());
    }

    public function login(Request $request)
    {
        $credentials = [
            'username' => (string) $request->input('username', ''),
            'password' => (string) $request->input('password', ''),
        ];

        // remember=1 issues Laravel's remember-me cookie (remember_web_*);
        // only tests/attack_test.go posts it.
        if (! Auth::attempt($credentials, $request->boolean('remember'))) {
            return response(Html::loginForm('Invalid username or password.'), 401);
        }

        $request->session()->regenerate(); // new session ID at login

        return redirect('/');
    }

    public function logout(Request $request)
    {
        Auth::logout();
        $request->session()->invalidate();      // new, empty session (the cookie is NOT deleted)
        $request->session()->regenerateToken();

        return redirect('/login');
    }
}
