<?php

namespace Idlegate\Laravel;

/**
 * Standard Webhooks verification (https://www.standardwebhooks.com): the
 * signed content is "<webhook-id>.<webhook-timestamp>.<body>", the key the
 * base64-decoded part of the secret after "whsec_", the signature header a
 * space-separated list of "v1,<base64 HMAC-SHA256>" of which one must match.
 */
final class Signature
{
    /** The shortest key idlegate accepts, in decoded bytes. */
    public const MIN_KEY_BYTES = 24;

    /** Decodes a whsec_ secret; throws \InvalidArgumentException naming what is wrong (never the secret). */
    public static function key(string $secret): string
    {
        if (strncmp($secret, 'whsec_', 6) !== 0) {
            throw new \InvalidArgumentException('the secret does not start with "whsec_"');
        }
        $key = base64_decode(substr($secret, 6), true);
        if ($key === false || $key === '') {
            throw new \InvalidArgumentException('the secret is not valid base64 after "whsec_"');
        }
        if (strlen($key) < self::MIN_KEY_BYTES) {
            throw new \InvalidArgumentException(sprintf('the secret decodes to %d bytes; idlegate needs at least %d', strlen($key), self::MIN_KEY_BYTES));
        }

        return $key;
    }

    /**
     * Returns null when the message is authentic and fresh, otherwise the
     * reason it is not.
     */
    public static function verify(string $key, string $id, string $timestamp, string $signatures, string $body, int $tolerance, ?int $now = null): ?string
    {
        if ($id === '' || $timestamp === '' || $signatures === '') {
            return 'missing webhook-id, webhook-timestamp or webhook-signature';
        }
        if (! ctype_digit($timestamp)) {
            return 'webhook-timestamp is not a number';
        }
        $now ??= time();
        if (abs($now - (int) $timestamp) > $tolerance) {
            return 'webhook-timestamp is outside the tolerance (clock skew or a replay)';
        }
        $expected = base64_encode(hash_hmac('sha256', $id . '.' . $timestamp . '.' . $body, $key, true));
        foreach (explode(' ', $signatures) as $entry) {
            [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
            if ($version === 'v1' && hash_equals($expected, $sig)) {
                return null;
            }
        }

        return 'no matching signature (is the secret the one in the Caddyfile?)';
    }

    /** Signs a message the way idlegate does (for tests and the check command). */
    public static function sign(string $key, string $id, int $timestamp, string $body): string
    {
        return 'v1,' . base64_encode(hash_hmac('sha256', $id . '.' . $timestamp . '.' . $body, $key, true));
    }
}
