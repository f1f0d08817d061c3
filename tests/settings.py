"""Test settings: the project's settings pointed at the real PostgreSQL and Redis.

``DATABASE_URL`` / ``REDIS_URL`` override; the defaults are this machine's services.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
# Workers run as in production (no query log); the demo app stays installed.
DEBUG = False
PIPELINES_RETRY_BACKOFF = 0.05
PIPELINES_RETRY_JITTER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A test module's workers may get a higher limit (WORKER_ENV in tests/conftest.py).
PIPELINES_MAX_EXPAND = int(os.environ.get("PIPELINES_TEST_MAX_EXPAND", "50"))
# Recovery on a test's time scale: reclaim a silent step after 3 s, sweep twice a second.
PIPELINES_HEARTBEAT_INTERVAL = 0.5
PIPELINES_RECLAIM_AFTER = 3.0
PIPELINES_REENQUEUE_AFTER = 3.0
PIPELINES_SWEEP_INTERVAL = 0.5
PIPELINES_CANCEL_GRACE = 2.0
PIPELINES_CRASH_BUDGET = 2
RQ_QUEUES = {
    name: {"URL": os.environ["REDIS_URL"], "SERIALIZER": "rq.serializers.JSONSerializer"}
    for name in ("pipelines", "default", "other")
}
# A host project's own queue with RQ's default (pickle) serializer, for coexistence tests.
RQ_QUEUES["pickled"] = {"URL": os.environ["REDIS_URL"]}

# Worker subprocesses started by the tests point at the test database pytest-django made.
if os.environ.get("PIPELINES_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["PIPELINES_TEST_DB_NAME"]  # noqa: F405
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not :memory:, so that worker processes share the test database.
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
