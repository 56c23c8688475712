<?php

namespace App\Models;

use Illuminate\Foundation\Auth\User as Authenticatable;

class User extends Authenticatable
{
    protected $fillable = ['username', 'password'];

    protected $hidden = ['password', 'remember_token'];

    protected $casts = [
        'last_logout_at' => 'datetime',
        'online_seconds' => 'integer',
    ];
}
