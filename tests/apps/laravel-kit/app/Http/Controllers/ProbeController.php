<?php

namespace App\Http\Controllers;

use Illuminate\Support\Facades\DB;

/** Test probes: what the app's listeners recorded. */
class ProbeController
{
    public function events()
    {
        $file = config('idlegate.events_file');
        $lines = is_file($file) ? array_filter(explode("\n", file_get_contents($file)), 'strlen') : [];

        return response()->json(array_map(fn ($l) => json_decode($l), array_values($lines)));
    }

    public function logouts()
    {
        return response()->json(DB::table('last_logouts')->orderBy('id')->get()->map(fn ($r) => [
            'user' => (string) $r->user_id,
            'guard' => $r->guard,
            'reason' => $r->reason,
            'duration_seconds' => $r->duration_seconds === null ? null : (int) $r->duration_seconds,
            'ended_at' => $r->ended_at,
        ]));
    }
}
