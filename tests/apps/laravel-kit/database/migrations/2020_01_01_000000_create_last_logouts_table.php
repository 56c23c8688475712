<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// The app's own record of logouts, written by its Logout listener.
class CreateLastLogoutsTable extends Migration
{
    public function up()
    {
        Schema::create('last_logouts', function (Blueprint $table) {
            $table->id();
            $table->unsignedBigInteger('user_id')->index();
            $table->string('guard');
            $table->string('reason');
            $table->unsignedInteger('duration_seconds')->nullable();
            $table->string('ended_at')->nullable();
            $table->timestamp('at');
        });
    }
}
