<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// idlegate.presence.enabled: last_logout_at and online_seconds on the users table.
return new class extends Migration
{
    public function up()
    {
        $table = config('idlegate.presence.table', 'users');
        Schema::table($table, function (Blueprint $t) use ($table) {
            if (! Schema::hasColumn($table, 'last_logout_at')) {
                $t->timestamp('last_logout_at')->nullable();
            }
            if (! Schema::hasColumn($table, 'online_seconds')) {
                $t->unsignedBigInteger('online_seconds')->default(0);
            }
        });
    }

    public function down()
    {
        Schema::table(config('idlegate.presence.table', 'users'), function (Blueprint $t) {
            $t->dropColumn(['last_logout_at', 'online_seconds']);
        });
    }
};
