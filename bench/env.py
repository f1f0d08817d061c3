"""A throwaway environment for one benchmark run: a fresh PostgreSQL database, a private
redis-server, and warm worker processes of whichever kind is being measured."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import mkdtemp

ROOT = Path(__file__).resolve().parent.parent


class BenchEnv:
    def __init__(self, settings: str = "bench.settings", **extra_env: str) -> None:
        from tests.helpers.redis_server import PrivateRedis

        self.settings = settings
        self.extra_env = extra_env
        self.tmp = Path(mkdtemp(prefix="pipelines-bench-"))
        base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        self.admin_url = base.replace("postgres://", "postgresql://")
        self.db_name = f"pipelines_bench_{os.getpid()}"
        self.db_url = base.rsplit("/", 1)[0] + "/" + self.db_name
        self.redis = PrivateRedis(self.tmp)
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings,
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis.url,
            "PYTHONPATH": str(ROOT),
            **self.extra_env,
        }

    def __enter__(self) -> BenchEnv:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}"')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.redis.start()
        os.environ.update(self.env())
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env(), check=True
        )
        import django

        django.setup()
        return self

    def start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs.remove(proc)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a process and everything it started, as if its machine died: its
        children (a work horse may have left the group), then its process group."""
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        for pid in map(int, children.stdout.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs.remove(proc)

    def __exit__(self, *exc: object) -> None:
        import psycopg
        from django.db import connections

        for proc in list(self.procs):
            self.stop(proc)
        connections.close_all()
        self.redis.stop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def wait(predicate: Callable[[], object], timeout: float = 600, interval: float = 0.02) -> float:
    """Seconds until ``predicate()`` is true."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("benchmark did not finish in time")
        time.sleep(interval)
    return time.perf_counter() - start
