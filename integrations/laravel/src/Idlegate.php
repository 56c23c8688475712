<?php

namespace Idlegate\Laravel;

use Idlegate\Laravel\Events\SessionEnded;

/**
 * What a Logout listener can ask about the logout it is handling.
 *
 *     public function handle(Logout $event) {
 *         $end = Idlegate::ending();   // null when the user clicked "Log out"
 *         $seconds = $end?->durationSeconds;
 *     }
 */
final class Idlegate
{
    private static ?SessionEnded $ending = null;

    /** The idlegate end being reported while its Logout event is dispatched, else null. */
    public static function ending(): ?SessionEnded
    {
        return self::$ending;
    }

    /** @internal runs $fn with ending() answering $end. */
    public static function during(SessionEnded $end, callable $fn): void
    {
        $previous = self::$ending;
        self::$ending = $end;
        try {
            $fn();
        } finally {
            self::$ending = $previous;
        }
    }
}
