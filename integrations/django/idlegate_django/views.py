import json
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import conf, signals
from .models import Refusal, WebhookDelivery
from .signature import SecretError, key, verify

log = logging.getLogger("idlegate_django")


@csrf_exempt  # idlegate signs its webhooks; it has no CSRF token or session
@require_POST
def webhook(request):
    """idlegate's webhook receiver.

    Verifies the Standard Webhooks signature and timestamp, then - once per
    webhook-id, in one transaction with the idempotency row - sends the kit's
    signal and, for the reasons in IDLEGATE_LOGOUT_REASONS,
    django.contrib.auth.signals.user_logged_out. Answers 200 only after every
    receiver ran; a receiver that raises rolls back and gets a 500, so
    idlegate delivers the event again.
    """
    try:
        raw_key = key(conf.get("IDLEGATE_WEBHOOK_SECRET"))
    except SecretError as e:
        return _refuse(500, f"IDLEGATE_WEBHOOK_SECRET is unusable: {e}")
    msg_id = request.headers.get("webhook-id", "")
    problem = verify(raw_key, msg_id, request.headers.get("webhook-timestamp", ""),
                     request.headers.get("webhook-signature", ""), request.body,
                     int(conf.get("IDLEGATE_WEBHOOK_TOLERANCE")))
    if problem:
        return _refuse(400, problem)
    try:
        payload = json.loads(request.body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return _refuse(400, "the body is not an idlegate event")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    event = {"id": msg_id, "type": payload["type"], "timestamp": payload.get("timestamp"), "data": data}

    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(id=msg_id, type=event["type"], data=data)
        except IntegrityError:
            return JsonResponse({"ok": True, "duplicate": True})
        _apply(request, event)
    return JsonResponse({"ok": True})


def _apply(request, event):
    user = _user(event["data"].get("user"))
    if event["type"] == "session.ended":
        signals.session_ended.send(sender=webhook, event=event, user=user, request=request)
        if user is not None and event["data"].get("reason") in conf.get("IDLEGATE_LOGOUT_REASONS"):
            # Sent the way django.contrib.auth.logout() sends it, except that
            # the request is idlegate's webhook, not the user's: request.user
            # is anonymous, request.session is not the ended session, and
            # request.idlegate is the event (see idlegate_django.ending).
            request.idlegate = event
            try:
                user_logged_out.send(sender=user.__class__, request=request, user=user)
            finally:
                del request.idlegate
    elif event["type"] == "session.started":
        signals.session_started.send(sender=webhook, event=event, user=user, request=request)
    # Types a newer idlegate may send are recorded and acknowledged.


def _user(pk):
    if pk is None or pk == "":
        return None
    try:
        return get_user_model()._default_manager.filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):
        return None


def _refuse(status, reason):
    log.warning("idlegate webhook refused: %s", reason)
    try:
        with transaction.atomic():
            r, _ = Refusal.objects.get_or_create(pk=1, defaults={"at": timezone.now(), "status": status, "reason": reason})
            Refusal.objects.filter(pk=1).update(at=timezone.now(), status=status, reason=reason[:255], count=r.count + 1)
    except Exception:  # no table yet: the answer still says why
        pass
    return JsonResponse({"error": reason}, status=status)
