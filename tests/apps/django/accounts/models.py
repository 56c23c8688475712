from django.conf import settings
from django.db import models


class Presence(models.Model):
    """Per-user online bookkeeping, fed by idlegate's session.ended webhook."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="presence")
    last_logout_at = models.DateTimeField(null=True, blank=True)
    online_seconds = models.PositiveIntegerField(default=0)


class WebhookEvent(models.Model):
    """Verified webhooks; the primary key is the webhook-id (idempotency key)."""

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=100)
    data = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)


class SessionActivity(models.Model):
    """DIY_LAST_ACTIVITY=1 only: what teams do today instead of idlegate."""

    session_key = models.CharField(primary_key=True, max_length=40)
    user_id = models.IntegerField(null=True)
    last_activity = models.DateTimeField()
