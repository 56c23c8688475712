<?php

namespace App\Http\Middleware;

use Illuminate\Foundation\Http\Middleware\VerifyCsrfToken as Middleware;

class VerifyCsrfToken extends Middleware
{
    // Test clients drive these with plain HTTP. (The webhook lives in
    // routes/api.php, outside the session/CSRF "web" group, and is
    // authenticated by its Standard Webhooks signature.)
    protected $except = [
        'login',
        'logout',
    ];
}
