from django.db import connection
from django.utils import timezone


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
            # One write-only UPSERT (a SELECT-then-UPDATE transaction such as
            # update_or_create() gets "database is locked" on sqlite under
            # parallel requests instead of waiting for the lock).
            with connection.cursor() as c:
                c.execute(
                    "INSERT INTO accounts_sessionactivity (session_key, user_id, last_activity) VALUES (%s, %s, %s)"
                    " ON CONFLICT(session_key) DO UPDATE SET user_id = excluded.user_id, last_activity = excluded.last_activity",
                    [key, request.user.pk, connection.ops.adapt_datetimefield_value(timezone.now())],
                )
        return response
