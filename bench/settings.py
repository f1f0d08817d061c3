"""Settings for the benchmarks: the project's, plus the bench app and its pipelines."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
# Workers run as in production (no query log); the demo app stays installed.
DEBUG = False
PIPELINES_MAX_EXPAND = 20_000
PIPELINES_RETRIES = 0
RQ_QUEUES = {
    name: {"URL": os.environ["REDIS_URL"], "SERIALIZER": "rq.serializers.JSONSerializer"}
    for name in ("pipelines", "default")
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]  # the view benchmark's test client
