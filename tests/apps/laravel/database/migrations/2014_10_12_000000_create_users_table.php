<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

class CreateUsersTable extends Migration
{
    public function up()
    {
        Schema::create('users', function (Blueprint $table) {
            $table->id();
            $table->string('username')->unique();
            $table->string('password');
            $table->rememberToken();
            $table->timestamp('last_logout_at')->nullable();      // set by RecordIdleLogout
            $table->unsignedInteger('online_seconds')->default(0); // summed by RecordIdleLogout
            $table->timestamps();
        });
    }
}
