<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

class CreateIdlegateWebhooksTable extends Migration
{
    public function up()
    {
        Schema::create('idlegate_webhooks', function (Blueprint $table) {
            $table->string('id')->primary(); // webhook-id: the idempotency key
            $table->string('type');
            $table->text('payload');
            $table->timestamp('received_at');
        });
    }
}
