"""Receiver for idlegate's Standard Webhooks ("session.ended")."""
import base64
import hashlib
import hmac
import json
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Presence, WebhookEvent

TOLERANCE_SECONDS = 5 * 60
_append_lock = threading.Lock()


def verify_standard_webhook(secret, headers, body):
    """Return None if the request is authentic, else the reason it is not."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and ts and signatures):
        return "missing webhook headers"
    if not ts.isdigit():
        return "bad timestamp"
    if abs(time.time() - int(ts)) > TOLERANCE_SECONDS:
        return "timestamp outside tolerance"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    for entry in signatures.split(" "):
        version, _, sig = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(given, expected):
            return None
    return "no matching signature"


def on_session_ended(data):
    """What a real app does: mark the user offline and add the online time."""
    user_id = str(data.get("user") or "")
    if not user_id.isdigit():
        return  # anonymous session
    Presence.objects.filter(user_id=int(user_id)).update(
        last_logout_at=parse_datetime(data.get("ended_at") or ""),
        online_seconds=F("online_seconds") + round(float(data.get("duration_seconds") or 0)),
    )


@csrf_exempt  # authenticated by its signature, not by a CSRF token
@require_POST
def idlegate_webhook(request):
    secret = settings.IDLEGATE_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "IDLEGATE_WEBHOOK_SECRET is not set"}, status=500)
    problem = verify_standard_webhook(secret, request.headers, request.body)
    if problem:
        return JsonResponse({"error": problem}, status=400)
    try:
        payload = json.loads(request.body)
        event_type, data = payload["type"], payload.get("data") or {}
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad payload"}, status=400)

    msg_id = request.headers["webhook-id"]
    try:
        with transaction.atomic():
            # Insert first (write-only transaction, so sqlite waits for the lock);
            # the primary key on webhook-id rejects redeliveries.
            WebhookEvent.objects.create(id=msg_id, type=event_type, data=data)
            if event_type == "session.ended":
                on_session_ended(data)
    except IntegrityError:
        return JsonResponse({"ok": True, "duplicate": True})  # redelivery: already applied
    with _append_lock, open(settings.IDLEGATE_EVENTS_FILE, "a") as f:
        f.write(json.dumps({"id": msg_id, "type": event_type, "data": data}) + "\n")
    return JsonResponse({"ok": True})


@require_GET
def events(request):
    try:
        with open(settings.IDLEGATE_EVENTS_FILE) as f:
            out = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        out = []
    return JsonResponse(out, safe=False)


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


@require_GET
def users(request):
    out = {}
    for u in get_user_model().objects.select_related("presence").order_by("pk"):
        p = getattr(u, "presence", None)
        out[str(u.pk)] = {
            "id": str(u.pk),
            "username": u.username,
            "last_logout_at": _iso(p.last_logout_at) if p else None,
            "online_seconds": p.online_seconds if p else 0,
        }
    return JsonResponse(out)
