"""The kit's signals. Receivers get ``event`` (the webhook as a dict:
``{"id": <webhook-id>, "type": ..., "timestamp": ..., "data": {...}}``, data
as DESIGN.md describes it: session, zone, user, reason, started_at,
last_activity_at, ended_at, duration_seconds, requests), ``user`` (the user
named by data.user, or None) and ``request`` (the webhook's request).

They run inside the transaction that records the webhook-id: a receiver
that raises rolls it back and the webhook is answered 500, so idlegate
delivers it again.
"""
from django.dispatch import Signal

session_ended = Signal()  # every reason, before user_logged_out
session_started = Signal()  # opt-in in the Caddyfile: `events ended started`
