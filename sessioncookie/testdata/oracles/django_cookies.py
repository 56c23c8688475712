#!/usr/bin/python3
"""Django oracle: Django 3.2's request.COOKIES behind Django's own WSGI
server (django.core.servers.basehttp, the wsgiref server that `runserver`
and tests/apps/django/serve.py run), reached over TCP like the test app.

The server runs in a thread of this process on 127.0.0.1; every input is
sent as a raw HTTP/1.1 request whose Cookie lines are the input's lines,
byte for byte. On the way, wsgiref's header parsing (http.client: latin-1,
values stripped with str.strip(), repeated headers joined with ","), then
Django's UTF-8 decoding of HTTP_COOKIE and django.http.cookie.parse_cookie
apply, as in the app. Output strings are the UTF-8 bytes of the str Django
hands the app.
"""
import json
import os
import socket
import socketserver
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import django
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], DEFAULT_CHARSET="utf-8")
django.setup()
from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer  # noqa: E402


def text(s):
    return s.encode("utf-8", "surrogatepass").decode("latin-1")


def app(environ, start_response):
    # What django.core.handlers.wsgi.WSGIHandler builds for the view.
    cookies = WSGIRequest(environ).COOKIES
    body = json.dumps([[text(k), text(v)] for k, v in cookies.items()]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def ask(port, lines):
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for line in lines:
        req += b"Cookie: " + line.encode("latin-1") + b"\r\n"
    req += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(req)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        return {"error": "HTTP " + b"".join(status).decode("latin-1")}
    return json.loads(body)


def answer(port, line):
    try:
        return ask(port, json.loads(line))
    except Exception as e:  # the request fails: no cookies reach the app
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    port = int(os.environ.get("DJANGO_COOKIES_PORT") or 0)
    # The threaded server, as basehttp.run(threading=True) makes it.
    server_cls = type("WSGIServer", (socketserver.ThreadingMixIn, WSGIServer), {"daemon_threads": True})
    server = server_cls(("127.0.0.1", port), QuietHandler, ipv6=False)
    server.set_app(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    # A few requests in flight at once; the answers keep the input's order.
    with ThreadPoolExecutor(4) as pool:
        for out in pool.map(lambda line: answer(port, line), sys.stdin):
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    server.shutdown()


main()
