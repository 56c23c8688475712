"""Route the webhook where the Caddyfile's `webhook <url>` points:

    path("idlegate/webhook", include("idlegate_django.urls")),
"""
from django.urls import path

from . import views

urlpatterns = [path("", views.webhook, name="idlegate-webhook")]
