"""Standard Webhooks verification (https://www.standardwebhooks.com).

Signed content: "<webhook-id>.<webhook-timestamp>.<body>"; key: the base64
after "whsec_"; header: space-separated "v1,<base64 HMAC-SHA256>" entries,
one of which must match.
"""
import base64
import binascii
import hashlib
import hmac
import time

MIN_KEY_BYTES = 24  # idlegate refuses shorter secrets


class SecretError(ValueError):
    """The secret is unusable; the message names why, never the secret."""


def key(secret):
    if not isinstance(secret, str) or not secret:
        raise SecretError("IDLEGATE_WEBHOOK_SECRET is not set")
    if not secret.startswith("whsec_"):
        raise SecretError('the secret does not start with "whsec_"')
    try:
        raw = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError('the secret is not valid base64 after "whsec_"') from None
    if len(raw) < MIN_KEY_BYTES:
        raise SecretError(f"the secret decodes to {len(raw)} bytes; idlegate needs at least {MIN_KEY_BYTES}")
    return raw


def sign(raw_key, msg_id, timestamp, body):
    mac = hmac.new(raw_key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(raw_key, msg_id, timestamp, signatures, body, tolerance, now=None):
    """None when authentic and fresh, else the reason it is not."""
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not timestamp.isdigit():
        return "webhook-timestamp is not a number"
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return "webhook-timestamp is outside the tolerance (clock skew or a replay)"
    expected = sign(raw_key, msg_id, timestamp, body)
    for entry in signatures.split(" "):
        if entry.startswith("v1,") and hmac.compare_digest(expected.encode(), entry.encode()):
            return None
    return "no matching signature (is the secret the one in the Caddyfile?)"
