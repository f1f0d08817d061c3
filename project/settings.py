"""Settings for the demo project. Everything comes from the environment, with defaults that
run on a fresh clone: SQLite and an embedded Redis, both under ``var/``."""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PIPELINES_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env(
    DEBUG=(bool, True),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]"]),
)

# With no configuration the project is the demo (DEBUG on); DEBUG=false is production.
DEBUG = env("DEBUG")
DEMO_SECRET_KEY = "insecure-demo-key-set-SECRET_KEY-in-production"  # noqa: S105 - refused below
SECRET_KEY = env.str("SECRET_KEY", default=DEMO_SECRET_KEY)
if not DEBUG and (
    SECRET_KEY == DEMO_SECRET_KEY
    or len(SECRET_KEY) < 50
    or SECRET_KEY.startswith("django-insecure-")
):
    # Sessions and password-reset links are signed with it: a public or guessable key
    # lets anyone forge them.
    raise ImproperlyConfigured(
        "DEBUG is false (production) but SECRET_KEY is not set to a real key of 50 or more "
        "random characters. Generate one with: python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

# HTTPS in production: each of these clears one `manage.py check --deploy` warning (see
# the README's Production section). Off by default so that plain-HTTP setups keep working.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Behind a proxy that terminates TLS: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_PROXY_SSL_HEADER = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER[0], _PROXY_SSL_HEADER[1])

# The demo app (its order form triggers runs) is part of the demo only: on with DEBUG,
# off in production unless DEMO=true.
DEMO = env.bool("DEMO", default=DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "pipelines",
    *(["project.demo"] if DEMO else []),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the dashboard's CSS and vendored JavaScript, in the demo and in production.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict:
    config = env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # IMMEDIATE takes the write lock when a transaction starts, so concurrent steps
        # serialise on BEGIN instead of failing on a lock upgrade halfway through; WAL lets
        # readers (the dashboard) proceed while a worker writes.
        config.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # Server-side binding, and prepared statements for what a connection runs 5 times,
        # so PostgreSQL keeps the plans of the statements every step runs: steps are about
        # a quarter faster. Behind PgBouncer in transaction mode without prepared-statement
        # support, set DATABASE_PREPARED_STATEMENTS=false (binding alone is pooler-safe).
        options = config.setdefault("OPTIONS", {})
        options.setdefault(
            "server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
        )
        prepared = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
        if options["server_side_binding"] and prepared:
            options.setdefault("prepare_threshold", 5)
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_url() -> str:
    url = env.str("REDIS_URL", default="")
    if url:
        return url
    from project.embedded_redis import embedded_redis_url

    return embedded_redis_url(VAR_DIR / "redis.db")


REDIS_URL = _redis_url()

# Pipeline workers (`manage.py pipelines worker`) force the JSON serializer and the
# engine's job class themselves; nothing global (no RQ setting) is needed.
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "SERIALIZER": "rq.serializers.JSONSerializer"}
    for name in ("pipelines", "default")
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic's target; WhiteNoise reads it
# Without collectstatic (the demo), serve straight from the apps' static folders.
WHITENOISE_USE_FINDERS = True

# Commands print absolute run URLs with it (e.g. http://127.0.0.1:8000), the path without.
PIPELINES_DASHBOARD_URL = env.str("PIPELINES_DASHBOARD_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "pipelines": {"handlers": ["console"], "level": env.str("PIPELINES_LOG_LEVEL", "INFO")},
        # Server errors (500s) with their traceback on the console, DEBUG or not: Django
        # alone only mails them to ADMINS when DEBUG is off.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
