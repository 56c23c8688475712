"""Settings of the Django test app behind idlegate.

Everything that changes per test run comes from the environment:
APP_STATE_DIR (sqlite DB, events.jsonl), IDLEGATE_WEBHOOK_SECRET, and
DIY_LAST_ACTIVITY=1 (the do-it-yourself activity tracking, for benchmarks).
Session settings are Django's defaults: cookie "sessionid", database backend,
SESSION_COOKIE_AGE two weeks, no save on every request.
"""
import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("APP_STATE_DIR") or Path(__file__).resolve().parent.parent / "state")
IDLEGATE_WEBHOOK_SECRET = os.environ.get("IDLEGATE_WEBHOOK_SECRET", "")
IDLEGATE_EVENTS_FILE = STATE_DIR / "events.jsonl"
DIY_LAST_ACTIVITY = os.environ.get("DIY_LAST_ACTIVITY") == "1"

SECRET_KEY = "idlegate-test-django-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]  # reached through idlegate/Caddy under any host name

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "accounts",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",  # sets Content-Length: keep-alive with the proxy
    "django.middleware.csrf.CsrfViewMiddleware",  # login/logout/webhook views are @csrf_exempt
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.IdleUserHeaderMiddleware",
]
if DIY_LAST_ACTIVITY:
    MIDDLEWARE.append("accounts.middleware.DiyLastActivityMiddleware")

ROOT_URLCONF = "idleapp.urls"
WSGI_APPLICATION = "idleapp.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": STATE_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20},  # threaded server: wait for the write lock
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

SESSION_ENGINE = "django.contrib.sessions.backends.db"

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"}},
}
