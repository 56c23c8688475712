<?php

use App\Http\Controllers\IdlegateWebhookController;
use App\Http\Controllers\ProbeController;
use Illuminate\Support\Facades\Route;

// Test probes only; the webhook route is the kit's (POST /idlegate/webhook).
Route::get('/idlegate/events', [ProbeController::class, 'events']);
Route::get('/idlegate/users', [IdlegateWebhookController::class, 'users']); // last_logout_at, online_seconds: the kit's presence listener
Route::get('/app/logouts', [ProbeController::class, 'logouts']);
