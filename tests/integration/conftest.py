from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.procs import ROOT, spawn_json, worker_env


@dataclass(frozen=True)
class DbProcs:
    """Runs ``tests.helpers.dbproc`` modes in new processes against one database."""

    env: dict[str, str]

    @staticmethod
    def command(mode: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "tests.helpers.dbproc", mode, *args]

    def __call__(self, mode: str, *args: str) -> dict[str, Any]:
        return spawn_json([self.command(mode, *args)], self.env)[0]


@pytest.fixture
def on_database(tmp_path: Path) -> Callable[[str], DbProcs]:
    """``on_database("postgres"|"sqlite")`` runs ``tests.helpers.dbproc`` in new processes
    against that database: the test's own PostgreSQL database, or a freshly migrated
    SQLite file."""
    from django.db import connection

    def prepare(kind: str) -> DbProcs:
        if kind == "postgres":
            assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
            return DbProcs(worker_env())
        env = worker_env(DATABASE_URL=f"sqlite:///{tmp_path / 'race.sqlite3'}")
        env.pop("PIPELINES_TEST_DB_NAME")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        return DbProcs(env)

    return prepare
