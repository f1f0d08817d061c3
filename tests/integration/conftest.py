from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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


def fresh_mariadb_database(name: str) -> str:
    """Drop and create ``name`` on the MariaDB server; its URL. Skips (fails with CI=true)
    when the server is not reachable."""
    import MySQLdb

    server = os.environ.get("MARIADB_URL", "mysql://root@127.0.0.1:3306").rstrip("/")
    parsed = urlparse(server)
    try:
        conn = MySQLdb.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
        )
    except MySQLdb.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"MariaDB not reachable at {server}: {exc}")
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    return f"{server}/{name}"


@pytest.fixture
def on_database(tmp_path: Path) -> Callable[[str], DbProcs]:
    """``on_database("postgres"|"sqlite"|"mariadb")`` runs ``tests.helpers.dbproc`` in new
    processes against that database: the test's own PostgreSQL database, a freshly migrated
    SQLite file, or a freshly migrated MariaDB database named after the test database
    (server: ``MARIADB_URL``, default ``mysql://root@127.0.0.1:3306``)."""
    from django.db import connection

    def prepare(kind: str) -> DbProcs:
        if kind == "postgres":
            assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
            return DbProcs(worker_env())
        if kind == "mariadb":
            url = fresh_mariadb_database(f"{connection.settings_dict['NAME']}_mariadb")
        else:
            url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
        env = worker_env(DATABASE_URL=url)
        env.pop("PIPELINES_TEST_DB_NAME")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        return DbProcs(env)

    return prepare
