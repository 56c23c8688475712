from . import conf


class IdleUserHeaderMiddleware:
    """Puts the signed-in user's pk on the response, in the header idlegate
    reads (IDLEGATE_USER_HEADER). Evaluated after the view, so the login
    response names the new user and the logout response none. List it after
    django.contrib.auth.middleware.AuthenticationMiddleware. idlegate strips
    the header before the browser sees it."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.header = conf.get("IDLEGATE_USER_HEADER")

    def __call__(self, request):
        response = self.get_response(request)
        if self.header:
            if self.header in response:
                del response[self.header]  # never let an accidental header name someone else
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                response[self.header] = str(user.pk)
        return response
