"""manage.py idlegate_check [--caddy http://127.0.0.1:2019]

Is the app configured consistently with itself and, given Caddy's admin
endpoint, with idlegate? One line per check ("ok", "warn" or "FAIL"); exits
1 when a check fails. Secrets are never printed.
"""
import hmac
import json
import re
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.urls import NoReverseMatch, resolve, reverse

from ... import conf
from ...models import Refusal, WebhookDelivery
from ...signature import SecretError, key

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class Command(BaseCommand):
    help = "Check the idlegate kit configuration (secret, webhook route, user header, tables)."

    def add_arguments(self, parser):
        parser.add_argument("--caddy", help="Caddy admin endpoint, to compare with idlegate's own configuration")

    def handle(self, *args, **opts):
        self.problems = 0
        raw_key = self.check_secret()
        path = self.check_route()
        header = self.check_header()
        self.check_tables()
        self.check_last_refusal()
        caddy = opts.get("caddy") or conf.get("IDLEGATE_CADDY_ADMIN")
        if caddy:
            self.check_caddy(caddy, raw_key, path, header)
        if self.problems:
            raise CommandError(f"idlegate_check: {self.problems} problem(s); webhooks will not be applied until they are fixed.")
        self.stdout.write("idlegate_check: all checks passed.")

    def check_secret(self):
        secret = conf.get("IDLEGATE_WEBHOOK_SECRET")
        try:
            raw = key(secret)
        except SecretError as e:
            what = "is not set" if not secret else f"is malformed: {e}"
            self.fail("secret", f"IDLEGATE_WEBHOOK_SECRET {what}; every webhook is answered 500")
            return None
        self.ok("secret", f"whsec_ secret set ({len(raw)}-byte key)")
        return raw

    def check_route(self):
        try:
            path = reverse("idlegate-webhook")
        except NoReverseMatch:
            self.fail("route", 'no URL named "idlegate-webhook": add path("idlegate/webhook", include("idlegate_django.urls")) to urls.py')
            return None
        match = resolve(path)
        if not getattr(match.func, "csrf_exempt", False):
            self.fail("route", f"POST {path} is not CSRF-exempt")
        else:
            self.ok("route", f"POST {path} -> idlegate_django.views.webhook (CSRF-exempt)")
        return path

    def check_header(self):
        header = conf.get("IDLEGATE_USER_HEADER") or ""
        if not TOKEN.match(header):
            self.fail("header", f'IDLEGATE_USER_HEADER "{header}" is not a valid header name')
            return header
        mw = list(getattr(settings, "MIDDLEWARE", []) or [])
        ours = "idlegate_django.middleware.IdleUserHeaderMiddleware"
        auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
        if ours not in mw:
            self.fail("header", f"{ours} is not in MIDDLEWARE; idlegate never learns who is signed in")
        elif auth in mw and mw.index(ours) < mw.index(auth):
            self.fail("header", f"{ours} is listed before {auth}; list it after")
        else:
            self.ok("header", f"{header} on every response of a signed-in user (Caddyfile: user_header {header})")
        return header

    def check_tables(self):
        try:
            tables = connection.introspection.table_names()
        except Exception as e:
            self.fail("database", f"cannot reach the database: {e}")
            return
        missing = [m._meta.db_table for m in (WebhookDelivery, Refusal) if m._meta.db_table not in tables]
        if missing:
            self.fail("database", f"table(s) {', '.join(missing)} missing: run manage.py migrate")
        else:
            self.ok("database", f"idempotency table {WebhookDelivery._meta.db_table}")

    def check_last_refusal(self):
        try:
            r = Refusal.objects.filter(pk=1).first()
        except Exception:
            return
        if r is not None:
            self.warn("deliveries", f"{r.count} refused webhook(s); last at {r.at.isoformat()}: {r.status} {r.reason}")

    def check_caddy(self, admin, raw_key, path, header):
        url = admin.rstrip("/") + "/config/"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=5) as resp:
                config = json.load(resp)
        except (OSError, ValueError) as e:
            self.fail("caddy", f"cannot read {url}: {e}")
            return
        handlers = list(_handlers(config))
        if not handlers:
            self.fail("caddy", f"no idle_session handler in the configuration at {admin}")
            return
        mine = [h for h in handlers if path and urllib.parse.urlsplit((h.get("webhook") or {}).get("url", "")).path.rstrip("/") == path.rstrip("/")]
        if not mine:
            self.fail("caddy", f"none of the {len(handlers)} idle_session handler(s) posts its webhook to {path}")
            return
        for h in mine:
            zone = h.get("name") or h.get("cookie") or "?"
            try:
                theirs = key((h.get("webhook") or {}).get("secret", ""))
            except SecretError:
                theirs = b""
            if raw_key is not None and not hmac.compare_digest(raw_key, theirs):
                self.fail("caddy", f"zone {zone}: IDLEGATE_WEBHOOK_SECRET differs from the secret idlegate signs with; every webhook is refused with 400 (no matching signature)")
            elif raw_key is not None:
                self.ok("caddy", f"zone {zone}: same webhook secret as idlegate, webhook {h['webhook']['url']}")
            theirs_header = h.get("user_header") or ""
            if not theirs_header:
                self.fail("caddy", f"zone {zone}: idlegate has no user_header; sessions will never name a user (add: user_header {header})")
            elif theirs_header.lower() != header.lower():
                self.fail("caddy", f"zone {zone}: idlegate reads user_header {theirs_header}, the app sends {header}")
            else:
                self.ok("caddy", f"zone {zone}: user_header {theirs_header}")

    def ok(self, what, msg):
        self.stdout.write(f"ok    {what:<10} {msg}")

    def warn(self, what, msg):
        self.stdout.write(f"warn  {what:<10} {msg}")

    def fail(self, what, msg):
        self.problems += 1
        self.stdout.write(f"FAIL  {what:<10} {msg}")


def _handlers(node):
    if isinstance(node, dict):
        if node.get("handler") == "idle_session":
            yield node
        for v in node.values():
            yield from _handlers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _handlers(v)
