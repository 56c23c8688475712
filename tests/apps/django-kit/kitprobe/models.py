from django.conf import settings
from django.db import models


class LastLogout(models.Model):
    """The app's own record of logouts, written by its user_logged_out receiver."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    reason = models.CharField(max_length=32)
    duration_seconds = models.IntegerField(null=True)
    ended_at = models.CharField(max_length=32, null=True)
    at = models.DateTimeField(auto_now_add=True)
