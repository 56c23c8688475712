"""Test probes: what the app's receivers recorded."""
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts.webhooks import users  # noqa: F401  (GET /idlegate/users: the Presence rows)

from .models import LastLogout


@require_GET
def events(request):
    try:
        lines = settings.IDLEGATE_EVENTS_FILE.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    return JsonResponse([json.loads(l) for l in lines if l], safe=False)


@require_GET
def logouts(request):
    rows = LastLogout.objects.order_by("id").values("user_id", "reason", "duration_seconds", "ended_at")
    return JsonResponse([{"user": str(r["user_id"]), "reason": r["reason"], "duration_seconds": r["duration_seconds"], "ended_at": r["ended_at"]} for r in rows], safe=False)
