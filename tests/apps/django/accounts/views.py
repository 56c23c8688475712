from html import escape

from django.contrib.auth import authenticate, login, logout
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .models import SessionActivity


def _page(title, body, status=200):
    html = f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head><body>{body}</body></html>'
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


def _login_form(error="", status=200):
    err = f'<p class="error">{escape(error)}</p>' if error else ""
    return _page(
        "Sign in",
        f"""<h1>Sign in</h1>{err}
<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>""",
        status,
    )


@csrf_exempt  # test clients post without a CSRF token
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.method == "GET":
        return _login_form()
    user = authenticate(request, username=request.POST.get("username", ""), password=request.POST.get("password", ""))
    if user is None:
        return _login_form("Invalid username or password.", status=401)
    login(request, user)  # cycles the session key: new sessionid cookie
    return redirect("/")


@csrf_exempt
@require_POST
def logout_view(request):
    logout(request)  # flushes the session; SessionMiddleware then deletes the cookie
    return redirect("/login")


@require_GET
def home(request):
    if not request.user.is_authenticated:
        return redirect("/login")
    return _page(
        "Home",
        f"""<h1>Hello {escape(request.user.username)}</h1>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<script>window.appScriptRan = true;</script>""",
    )


@require_GET
def poll(request):
    return JsonResponse({"user": str(request.user.pk) if request.user.is_authenticated else None})


@require_GET
def api_me(request):
    if not request.user.is_authenticated:
        return JsonResponse({"error": "unauthenticated", "user": None}, status=401)
    return JsonResponse({"user": str(request.user.pk), "username": request.user.username})


@require_GET
def diy_activity(request):
    rows = SessionActivity.objects.order_by("-last_activity").values("user_id", "last_activity")
    return JsonResponse([{"user": str(r["user_id"]), "last_activity": r["last_activity"].isoformat()} for r in rows], safe=False)
