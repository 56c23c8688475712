"""idlegate kit for Django.

Install: add "idlegate_django" to INSTALLED_APPS, add
"idlegate_django.middleware.IdleUserHeaderMiddleware" to MIDDLEWARE after
AuthenticationMiddleware, route the webhook with
``path("idlegate/webhook", include("idlegate_django.urls"))``, set
IDLEGATE_WEBHOOK_SECRET, run ``manage.py migrate`` and ``manage.py idlegate_check``.
"""

default_app_config = "idlegate_django.apps.IdlegateConfig"  # Django < 3.2


def ending(request):
    """The idlegate event a user_logged_out receiver is handling, or None.

    On an idle, absolute or revoked end the kit sends user_logged_out with
    the webhook's request, which carries the event as ``request.idlegate``;
    a logout the user clicked has none.
    """
    return getattr(request, "idlegate", None) if request is not None else None
