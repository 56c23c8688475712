<?php

namespace Database\Seeders;

use App\Models\User;
use Illuminate\Database\Seeder;

class DatabaseSeeder extends Seeder
{
    // alice-pw / bob-pw, bcrypt (Laravel's default hasher), hashed once so a
    // start on a busy CI machine does not pay for it.
    const USERS = [
        42 => ['alice', '$2y$10$e1UI7UPYpOeb9uZbJ6sFi.LZUaXBF9eZnSp3hqD12uywEu7UwF.Vm'],
        43 => ['bob', '$2y$10$Ip6zio3ILjVCJNKnRLAVD.EFziZji7YwsG9CqMqqC5BElDbugLlfu'],
    ];

    public function run()
    {
        foreach (self::USERS as $id => [$name, $hash]) {
            User::forceCreate(['id' => $id, 'username' => $name, 'password' => $hash]);
        }
    }
}
