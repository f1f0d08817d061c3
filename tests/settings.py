"""Test settings: the project's settings pointed at the real PostgreSQL and Redis.

``DATABASE_URL`` / ``REDIS_URL`` override; the defaults are this machine's services.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PIPELINES_RETRY_BACKOFF = 0.05
PIPELINES_RETRY_JITTER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
