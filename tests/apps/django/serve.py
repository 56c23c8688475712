#!/usr/bin/python3
"""Prepare APP_STATE_DIR (migrate, seed alice/bob) and serve on 127.0.0.1:<port>
with Django's threaded WSGI server (the stdlib wsgiref server plus
ThreadingMixIn, the same one `runserver` uses, without autoreload/static).

Applying Django's ~20 migrations takes seconds on a loaded machine, so the
migrated and seeded DB is kept as a template (keyed by a hash of the Django
version and this app's migrations and seed) in $IDLEGATE_APPS_CACHE, default
<tmp>/idlegate-test-apps, and copied into each fresh APP_STATE_DIR.
"""
import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idleapp.settings")
HERE = Path(__file__).resolve().parent

# Passwords alice-pw / bob-pw, hashed once with Django's default PBKDF2 hasher
# (hashing 2 x 260000 rounds at every start is slow on a busy CI machine).
USERS = (
    (42, "alice", "pbkdf2_sha256$260000$ysguNNXi9SOJkvycDD5PuT$VVg0Z3wFW6U1lNE6DMMeaA3tMbA2uabtY/o30iArJGE="),
    (43, "bob", "pbkdf2_sha256$260000$8EAyeisq1ZoKhrDOng5IzC$ACqfZZ59SYTmyhddu2OwAo3bq2bMe95/Zj6F0Td9M+w="),
)


def main():
    port = int(sys.argv[1])
    import django

    django.setup()
    prepare_database()

    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    WSGIServer.request_queue_size = 128
    print(f"django test app on http://127.0.0.1:{port}", flush=True)
    run("127.0.0.1", port, get_wsgi_application(), ipv6=False, threading=True)


def prepare_database():
    from django.conf import settings
    from django.db import connections

    db = Path(settings.DATABASES["default"]["NAME"])
    if db.exists():  # restart on an existing state dir: just bring it up to date
        migrate_and_seed()
        return
    h = hashlib.sha256(django_version().encode())
    for f in sorted((HERE / "accounts" / "migrations").glob("*.py")) + [Path(__file__)]:
        h.update(f.name.encode() + f.read_bytes())
    cache = Path(os.environ.get("IDLEGATE_APPS_CACHE") or Path(tempfile.gettempdir()) / "idlegate-test-apps")
    cache.mkdir(parents=True, exist_ok=True)
    template = cache / f"django-{h.hexdigest()[:16]}.sqlite3"
    with open(cache / "django.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            migrate_and_seed()
            connections.close_all()
            tmp = template.with_suffix(".tmp")
            shutil.copyfile(db, tmp)
            os.replace(tmp, template)
            return
    shutil.copyfile(template, db)


def django_version():
    import django

    return django.get_version()


def migrate_and_seed():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Presence

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        # WAL: readers (session lookups) do not wait for writers.
        c.execute("PRAGMA journal_mode=WAL")
    User = get_user_model()
    for pk, username, password_hash in USERS:
        user, _ = User.objects.get_or_create(pk=pk, defaults={"username": username, "password": password_hash})
        Presence.objects.get_or_create(user=user)


if __name__ == "__main__":
    main()
