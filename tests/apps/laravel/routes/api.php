<?php

use App\Http\Controllers\IdlegateWebhookController;
use Illuminate\Support\Facades\Route;

// Stateless routes ("api" group: no session, no CSRF, no cookies).
Route::post('/idlegate/webhook', [IdlegateWebhookController::class, 'receive']);
Route::get('/idlegate/events', [IdlegateWebhookController::class, 'events']);
Route::get('/idlegate/users', [IdlegateWebhookController::class, 'users']);
