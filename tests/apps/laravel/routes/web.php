<?php

use App\Http\Controllers\AuthController;
use App\Http\Controllers\HomeController;
use Illuminate\Support\Facades\Route;

Route::get('/login', [AuthController::class, 'show']);
Route::post('/login', [AuthController::class, 'login']);
Route::post('/logout', [AuthController::class, 'logout']);

Route::get('/', [HomeController::class, 'home']);
Route::get('/poll', [HomeController::class, 'poll']);
Route::get('/api/me', [HomeController::class, 'me']);
