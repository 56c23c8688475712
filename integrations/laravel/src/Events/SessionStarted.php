<?php

namespace Idlegate\Laravel\Events;

/**
 * idlegate saw a session start (opt-in on the idlegate side:
 * `events ended started` in the Caddyfile's webhook block).
 */
class SessionStarted extends SessionEvent
{
}
