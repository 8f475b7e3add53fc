"""Settings of the IACT example, all from the environment (see README.md for the names).

Values come from the process environment or, for names it does not set, from the release's
`.env` file (written by the deploy). Required: SECRET_KEY (or DJANGO_SECRET_KEY) unless DEBUG,
DATABASE_URL, REDIS_URL.
"""
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import Env, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env(BASE_DIR / ".env")


def required(name: str, *aliases: str) -> str:
    for candidate in (name, *aliases):
        value = env.get(candidate)
        if value is not None:
            return value
    raise ImproperlyConfigured(f"{' or '.join((name, *aliases))} must be set (environment or .env)")


DEBUG = env.bool("DEBUG", False)
SECRET_KEY = env.get("SECRET_KEY") or env.get("DJANGO_SECRET_KEY") or ("insecure-debug-only" if DEBUG else None)
if SECRET_KEY is None:
    required("SECRET_KEY", "DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", "")
# Behind nginx: it sets X-Forwarded-Proto, so request.is_secure() sees the client's scheme.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# What /api/health reports: APP_VERSION (the deploy writes it) or else the VERSION file.
APP_VERSION = env.get("APP_VERSION") or (BASE_DIR / "VERSION").read_text(encoding="utf-8").strip()

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "iact.urls"
WSGI_APPLICATION = "iact.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {"default": parse_database_url(required("DATABASE_URL"))}
DATABASES["default"]["CONN_MAX_AGE"] = int(env.get("DB_CONN_MAX_AGE", "60"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = required("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "iact"),
    }
}

# Static files: collectstatic writes hashed copies (site.3f2a….css) and a manifest into
# STATIC_ROOT; nginx serves them under STATIC_URL with a long cache lifetime.
STATIC_URL = env.get("STATIC_URL", "/static/")
STATIC_ROOT = env.get("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Bearer tokens of /api/auth/login: signed with SECRET_KEY, valid this many seconds.
AUTH_TOKEN_MAX_AGE = int(env.get("AUTH_TOKEN_MAX_AGE", "3600"))
# The smoke-test account kept by `migrate` (core/smoke_user.py); no password, no account.
SMOKE_USERNAME = env.get("SMOKE_USERNAME", "smoke")
SMOKE_PASSWORD = env.get("SMOKE_PASSWORD")

# Celery (names are CELERY_ + the setting). The broker is Redis.
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# A task must never be lost in a restart (systemd sends TERM = warm shutdown):
# - acks_late: the message is acknowledged after the task finished, not when it was received,
#   so a worker that stops mid-task leaves it unacknowledged and Redis hands it out again;
# - prefetch_multiplier 1: a worker reserves one message per process at a time, so a stopping
#   worker holds no queue of reserved-but-unstarted messages (with Redis they would only come
#   back after the visibility timeout);
# - reject_on_worker_lost: a task whose child process died (killed, OOM) is requeued too.
# Warm shutdown waits for running tasks to finish and gives unstarted ones back. A task can
# therefore run twice (finished but not yet acknowledged), never zero times: tasks must be
# idempotent (record_task is: unique task_id).
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# An unacknowledged message (of a worker killed without warm shutdown) goes back to the queue
# once it is this many seconds old, at the next worker start or periodic sweep (every ~100 s).
# It must exceed the longest task run time, or a slow task runs twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(env.get("CELERY_VISIBILITY_TIMEOUT", "600"))}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
}
