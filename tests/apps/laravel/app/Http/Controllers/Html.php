<?php

namespace App\Http\Controllers;

/** Tiny HTML helpers: the app deliberately uses no Blade views. */
final class Html
{
    public static function page(string $title, string $body): string
    {
        return '<!doctype html><html><head><meta charset="utf-8"><title>' . e($title) . '</title></head><body>' . $body . '</body></html>';
    }

    public static function loginForm(string $error = ''): string
    {
        $err = $error === '' ? '' : '<p class="error">' . e($error) . '</p>';

        return self::page('Sign in', "<h1>Sign in</h1>$err
<form method=\"post\" action=\"/login\">
<label>Username <input name=\"username\" autocomplete=\"username\"></label>
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>
<button type=\"submit\">Sign in</button>
</form>");
    }
}
