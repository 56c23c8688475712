from django.utils import timezone

from .models import SessionActivity


class IdleUserHeaderMiddleware:
    """The idlegate integration: name the signed-in user on every response.

    Runs after AuthenticationMiddleware; by the time the response comes back,
    login() / logout() have already replaced request.user, so the login
    response carries the new user and the logout response carries none.
    idlegate reads X-Idle-User and strips it before the browser sees it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response["X-Idle-User"] = str(user.pk)
        return response


class DiyLastActivityMiddleware:
    """DIY_LAST_ACTIVITY=1: write the session's last activity on every request
    (one DB write per request), which a cron/Celery job would then scan."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        key = request.session.session_key
        if key and request.user.is_authenticated:
            SessionActivity.objects.update_or_create(
                session_key=key,
                defaults={"user_id": request.user.pk, "last_activity": timezone.now()},
            )
        return response
