"""Settings of the Django test app with the idlegate kit.

As tests/apps/django/idleapp/settings.py, except that the kit replaces the
hand-written integration: "idlegate_django" in INSTALLED_APPS, its middleware
after AuthenticationMiddleware, its view routed in kitapp/urls.py.
"""
import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("APP_STATE_DIR") or Path(__file__).resolve().parent.parent / "state")
IDLEGATE_WEBHOOK_SECRET = os.environ.get("IDLEGATE_WEBHOOK_SECRET", "")
IDLEGATE_CADDY_ADMIN = os.environ.get("IDLEGATE_CADDY_ADMIN") or None
IDLEGATE_EVENTS_FILE = STATE_DIR / "events.jsonl"  # the test probe's

SECRET_KEY = "idlegate-test-django-kit-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "accounts",  # tests/apps/django: login, logout, home, /api/me
    "idlegate_django",
    "kitprobe",  # the app's own user_logged_out receiver, and test probes
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "idlegate_django.middleware.IdleUserHeaderMiddleware",
]

ROOT_URLCONF = "kitapp.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": STATE_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20},
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
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING"},
        "idlegate_django": {"handlers": ["console"], "level": "WARNING"},
    },
}
