from django.db import models


class WebhookDelivery(models.Model):
    """One row per applied webhook: the primary key is the webhook-id, so a
    redelivery is recognised and not applied twice."""

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=64)
    data = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "idlegate_webhook_delivery"


class Refusal(models.Model):
    """The last refused delivery (a single row), for idlegate_check."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    at = models.DateTimeField()
    status = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=255)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "idlegate_refusal"
