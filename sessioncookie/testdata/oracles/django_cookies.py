#!/usr/bin/python3
"""Django oracle: Django 3.2's WSGIRequest(environ).COOKIES, the code path of
the tests/apps/django app (wsgiref's WSGI server, as `runserver` uses it).

wsgiref's get_environ joins repeated headers with "," into HTTP_COOKIE, a
latin-1 str (PEP 3333); Django decodes it as UTF-8 with replacement
(get_str_from_wsgi) and hands it to django.http.cookie.parse_cookie.
Output strings are the UTF-8 bytes of the str Django hands the app.
"""
import io
import json
import sys

import django
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], DEFAULT_CHARSET="utf-8")
django.setup()
from django.core.handlers.wsgi import WSGIRequest  # noqa: E402


def text(s):
    return s.encode("utf-8", "surrogatepass").decode("latin-1")


def read(lines):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    if lines:
        environ["HTTP_COOKIE"] = ",".join(lines)
    return [[text(k), text(v)] for k, v in WSGIRequest(environ).COOKIES.items()]


for line in sys.stdin:
    try:
        out = read(json.loads(line))
    except Exception as e:  # the request fails in Django: no cookies reach the app
        out = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
