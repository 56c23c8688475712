<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// The idempotency record: one row per delivered webhook-id.
return new class extends Migration
{
    public function up()
    {
        Schema::create(config('idlegate.table', 'idlegate_webhooks'), function (Blueprint $table) {
            $table->string('id')->primary(); // webhook-id
            $table->string('type', 64);
            $table->text('payload');
            $table->timestamp('received_at')->index();
        });
    }

    public function down()
    {
        Schema::dropIfExists(config('idlegate.table', 'idlegate_webhooks'));
    }
};
