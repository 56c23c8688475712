"""What the app had before idlegate: an ordinary user_logged_out receiver.
With the kit it also runs when a session expires at the proxy;
idlegate_django.ending(request) then says why and for how long."""
import json

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db.models import F
from django.dispatch import receiver
from django.utils.dateparse import parse_datetime

import idlegate_django
from accounts.models import Presence
from idlegate_django.signals import session_ended, session_started

from .models import LastLogout


@receiver(user_logged_out)
def record_last_logout(sender, request, user, **kwargs):
    if user is None:
        return
    end = idlegate_django.ending(request)
    LastLogout.objects.create(
        user=user,
        reason=end["data"].get("reason") if end else "app",
        duration_seconds=round(end["data"].get("duration_seconds", 0)) if end else None,
        ended_at=end["data"].get("ended_at") if end else None,
    )


@receiver(session_ended)
def record_presence(sender, event, user, **kwargs):
    """Online time from the kit's signal (every reason), as GET /idlegate/users shows it."""
    _append(event)
    if user is None:
        return
    Presence.objects.update_or_create(user=user, defaults={"last_logout_at": parse_datetime(event["data"].get("ended_at") or "")})
    Presence.objects.filter(user=user).update(online_seconds=F("online_seconds") + round(event["data"].get("duration_seconds") or 0))


@receiver(session_started)
def record_started(sender, event, **kwargs):
    _append(event)


def _append(event):
    with open(settings.IDLEGATE_EVENTS_FILE, "a") as f:
        f.write(json.dumps({"id": event["id"], "type": event["type"], "data": event["data"]}) + "\n")
