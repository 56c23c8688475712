#!/usr/bin/python3
"""Prepare APP_STATE_DIR (migrate, seed alice/bob) and serve on 127.0.0.1:<port>
with Django's threaded WSGI server (the stdlib wsgiref server plus
ThreadingMixIn, the same one `runserver` uses, without autoreload/static)."""
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idleapp.settings")


def main():
    port = int(sys.argv[1])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    seed_users()

    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    WSGIServer.request_queue_size = 128
    print(f"django test app on http://127.0.0.1:{port}", flush=True)
    run("127.0.0.1", port, get_wsgi_application(), ipv6=False, threading=True)


def seed_users():
    from django.contrib.auth import get_user_model

    from accounts.models import Presence

    User = get_user_model()
    for pk, username in ((42, "alice"), (43, "bob")):
        user, created = User.objects.get_or_create(pk=pk, defaults={"username": username})
        if created:
            user.set_password(f"{username}-pw")
            user.save()
        Presence.objects.get_or_create(user=user)


if __name__ == "__main__":
    main()
