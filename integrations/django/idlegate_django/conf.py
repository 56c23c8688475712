"""The kit's settings, with their defaults. Each is a Django setting."""
from django.conf import settings

DEFAULTS = {
    # The Standard Webhooks secret idlegate signs with ("whsec_..."): the
    # `secret` of the Caddyfile's webhook block.
    "IDLEGATE_WEBHOOK_SECRET": "",
    # How far webhook-timestamp may be from now, in seconds.
    "IDLEGATE_WEBHOOK_TOLERANCE": 300,
    # The response header idlegate reads the user from (Caddyfile: user_header).
    "IDLEGATE_USER_HEADER": "X-Idle-User",
    # End reasons for which django.contrib.auth's user_logged_out is sent.
    # "logout" is left out: django.contrib.auth.logout() already sent it when
    # the user clicked "Log out", and idlegate reports that end afterwards.
    "IDLEGATE_LOGOUT_REASONS": ("idle", "absolute", "revoked"),
    # Optional: Caddy's admin endpoint, for `manage.py idlegate_check`.
    "IDLEGATE_CADDY_ADMIN": None,
}


def get(name):
    return getattr(settings, name, DEFAULTS[name])
