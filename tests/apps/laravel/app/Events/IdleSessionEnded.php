<?php

namespace App\Events;

/** Dispatched for each verified, first-seen "session.ended" webhook from idlegate. */
class IdleSessionEnded
{
    public function __construct(public string $webhookId, public array $data)
    {
    }
}
