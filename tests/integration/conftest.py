from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def on_database(tmp_path: Path) -> Callable[..., Callable[..., dict]]:
    """``on_database("postgres"|"sqlite")`` returns ``call(mode, *args)`` running
    ``tests.helpers.dbproc`` in a new process against that database: the test's own
    PostgreSQL database, or a freshly migrated SQLite file."""
    from django.db import connection

    def prepare(kind: str) -> Callable[..., dict]:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
        if kind == "postgres":
            assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
            env["PIPELINES_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
        else:
            env.pop("PIPELINES_TEST_DB_NAME", None)
            env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'race.sqlite3'}"
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
            )

        def call(mode: str, *args: str, spawn: bool = False) -> dict:
            cmd = [sys.executable, "-m", "tests.helpers.dbproc", mode, *args]
            if spawn:
                return subprocess.Popen(  # type: ignore[return-value]
                    cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr.decode()
            return json.loads(done.stdout)

        return call

    return prepare
