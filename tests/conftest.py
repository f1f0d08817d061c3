"""Shared fixtures: real Redis, real pipelines worker subprocesses, and service checks.

With CI=true a missing PostgreSQL or Redis fails the run; elsewhere the tests that need
them are skipped with a reason, and pure unit tests still run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.helpers.procs import ROOT, worker_env

CI = os.environ.get("CI", "").lower() == "true"
_missing: list[str] = []


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("sqlite", "unix", ""):
        return True
    try:
        socket.create_connection((parsed.hostname, parsed.port or default_port), timeout=2).close()
    except OSError:
        return False
    return True


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql") and not _reachable(
        f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432
    ):
        _missing.append("PostgreSQL")
    if not _reachable(settings.REDIS_URL, 6379):
        _missing.append("Redis")
    if _missing and CI:
        pytest.exit(f"CI=true but {' and '.join(_missing)} is not reachable", returncode=1)


def _flush_retrying_deadlocks() -> None:
    """Worker subprocesses (their sweepers, heartbeats) keep using the test database while
    pytest-django flushes it between tests; a TRUNCATE can then deadlock with them.
    PostgreSQL aborts one side; retry the flush rather than fail the next test."""
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self: object, *args: object, **options: object) -> object:
        for attempt in range(5):
            try:
                return original(self, *args, **options)  # type: ignore[arg-type]
            except Exception as exc:  # flush wraps the database error in a CommandError
                cause = exc.__cause__ or exc
                if "deadlock detected" not in str(cause) or attempt == 4:
                    raise
                time.sleep(0.2)
        return None

    flush.Command.handle = handle  # type: ignore[method-assign,assignment]


def pytest_sessionstart(session: pytest.Session) -> None:
    _flush_retrying_deadlocks()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not _missing:
        return
    skip = pytest.mark.skip(reason=f"{' and '.join(_missing)} not reachable (set CI=true to fail)")
    for item in items:
        if item.get_closest_marker("django_db") or item.get_closest_marker("redis"):
            item.add_marker(skip)


@pytest.fixture
def redis_conn() -> object:
    """The tests' own Redis database, flushed before the test."""
    import django_rq

    conn = django_rq.get_connection("pipelines")
    conn.flushdb()
    return conn


class WorkerPool:
    def __init__(
        self,
        count: int,
        queues: list[str],
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = extra_env or {}
        self.count = count
        self.queues = queues
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        # Every process of this pool carries it in its environment: RQ's work horse puts
        # itself in a process group of its own, so killing the worker's group misses it.
        self.mark = f"{os.getpid()}-{id(self)}"

    def start(self, tmp: Path) -> None:
        import django_rq
        from rq import Worker

        conn = django_rq.get_connection("pipelines")  # the test's own settings point here too
        before = len(Worker.all(connection=conn))
        for i in range(self.count):
            log = tmp / f"worker-{i}.log"
            args = [sys.executable, "manage.py", "pipelines", "worker", *self.queues]
            self.procs.append(
                subprocess.Popen(
                    args,
                    cwd=ROOT,
                    env=worker_env(**self.extra_env, PIPELINES_TEST_POOL=self.mark),
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    # Its own process group: the work horse and RQ's scheduler process go
                    # down with it instead of outliving the tests.
                    start_new_session=True,
                )
            )
            self.logs.append(log)
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=conn)) < before + self.count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"workers did not start ({conn}: {Worker.all(connection=conn)}, "
                    f"before={before}):\n{self.output()}"
                )
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a worker exited at start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs)

    def add(self, tmp: Path) -> None:
        """Start one more worker (e.g. after a test killed one)."""
        extra = WorkerPool(1, self.queues, self.extra_env)
        extra.mark = self.mark
        extra.start(tmp)
        self.procs += extra.procs
        self.logs += extra.logs

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind
        for pid in _marked_processes(f"PIPELINES_TEST_POOL={self.mark}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a work horse that outlived its worker


def _marked_processes(mark: str) -> list[int]:
    """The processes whose environment holds ``mark`` (Linux: /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if mark.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


@pytest.fixture(scope="module")
def workers(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerPool]:
    """Real ``manage.py pipelines worker`` processes (forking, with scheduler) for the whole
    test module, on the test database and the tests' Redis database. A module sets
    ``WORKER_COUNT`` to get more than two, and ``WORKER_ENV`` to add to their
    environment."""
    import django_rq

    django_rq.get_connection("pipelines").flushdb()
    pool = WorkerPool(
        getattr(request.module, "WORKER_COUNT", 2),
        ["pipelines", "other"],
        extra_env=getattr(request.module, "WORKER_ENV", None),
    )
    pool.start(tmp_path_factory.mktemp("workers"))
    yield pool
    pool.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def finished() -> Callable[..., object]:
    """``finished(run)`` waits until the run is terminal and returns it refreshed."""

    def wait(run: object, timeout: float = 30) -> object:
        def done() -> bool:
            run.refresh_from_db()  # type: ignore[attr-defined]
            return run.is_finished  # type: ignore[attr-defined]

        wait_for(done, timeout, f"run {run.pk} to finish")  # type: ignore[attr-defined]
        return run

    return wait
