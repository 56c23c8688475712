#!/usr/bin/python3
"""As tests/apps/django/serve.py, for the kit variant: migrate + seed
APP_STATE_DIR (from a template DB kept in $IDLEGATE_APPS_CACHE, keyed by the
Django version and every migration this app applies, the kit's included),
then serve on 127.0.0.1:<port> with Django's threaded WSGI server."""
import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kitapp.settings")
HERE = Path(__file__).resolve().parent
PLAIN = HERE.parent / "django"
KIT = HERE.parent.parent.parent / "integrations" / "django" / "idlegate_django"
sys.path[:0] = [str(HERE), str(PLAIN), str(KIT.parent)]

from serve_plain import USERS  # noqa: E402  (the plain app's seed: alice 42, bob 43)


def main():
    port = int(sys.argv[1])
    import django

    django.setup()
    prepare_database()

    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    WSGIServer.request_queue_size = 128
    print(f"django-kit test app on http://127.0.0.1:{port}", flush=True)
    run("127.0.0.1", port, get_wsgi_application(), ipv6=False, threading=True)


def prepare_database():
    import django
    from django.conf import settings
    from django.db import connections

    db = Path(settings.DATABASES["default"]["NAME"])
    if db.exists():
        migrate_and_seed()
        return
    h = hashlib.sha256(django.get_version().encode())
    for d in (PLAIN / "accounts" / "migrations", KIT / "migrations", HERE / "kitprobe" / "migrations"):
        for f in sorted(d.glob("*.py")):
            h.update(f.name.encode() + f.read_bytes())
    h.update(Path(__file__).read_bytes())
    cache = Path(os.environ.get("IDLEGATE_APPS_CACHE") or Path(tempfile.gettempdir()) / "idlegate-test-apps")
    cache.mkdir(parents=True, exist_ok=True)
    template = cache / f"django-kit-{h.hexdigest()[:16]}.sqlite3"
    with open(cache / "django-kit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            migrate_and_seed()
            connections.close_all()
            tmp = template.with_suffix(".tmp")
            shutil.copyfile(db, tmp)
            os.replace(tmp, template)
            return
    shutil.copyfile(template, db)


def migrate_and_seed():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Presence

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        c.execute("PRAGMA journal_mode=WAL")
    User = get_user_model()
    for pk, username, password_hash in USERS:
        user, _ = User.objects.get_or_create(pk=pk, defaults={"username": username, "password": password_hash})
        Presence.objects.get_or_create(user=user)


if __name__ == "__main__":
    main()
