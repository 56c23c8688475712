<?php

namespace Database\Seeders;

use App\Models\User;
use Illuminate\Database\Seeder;
use Illuminate\Support\Facades\Hash;

class DatabaseSeeder extends Seeder
{
    public function run()
    {
        foreach ([42 => 'alice', 43 => 'bob'] as $id => $name) {
            User::forceCreate(['id' => $id, 'username' => $name, 'password' => Hash::make("$name-pw")]);
        }
    }
}
