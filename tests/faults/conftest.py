"""Fault injection with real processes: a private redis-server per module (so a test can
kill, flush or restart it), rqworker subprocesses on it, and an invariant check."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from django.test import override_settings
from psycopg import sql

from pipelines.models import (
    ContextWrite,
    PipelineRun,
    RunContext,
    StepAttempt,
    StepExecution,
    StepStatus,
)
from tests.conftest import WorkerPool
from tests.helpers.redis_server import PrivateRedis

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def fault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """The module's private redis-server, which the app's queues point at."""
    workdir = tmp_path_factory.mktemp("faults")
    server = PrivateRedis(workdir)
    server.start()
    os.environ["PIPELINES_FAULT_DIR"] = str(workdir / "marks")
    queues = {
        name: {"URL": server.url, "SERIALIZER": "rq.serializers.JSONSerializer"}
        for name in ("pipelines", "default", "other")
    }
    with override_settings(RQ_QUEUES=queues):
        yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_workers(
    fault_env: PrivateRedis, django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerPool]:
    pool = WorkerPool(2, ["pipelines"], extra_env={"REDIS_URL": fault_env.url})
    pool.start(tmp_path_factory.mktemp("fault-workers"))
    yield pool
    pool.stop()


def assert_invariants(*runs: PipelineRun) -> None:
    """What must hold after any fault: every run terminal, at most one succeeded attempt
    per step execution, every context key written once (unless overwritten) and its stored
    value the recorded winner's, nothing left enqueued or running."""
    for run in runs:
        run.refresh_from_db()
        assert run.is_finished, (run.pk, run.status)
        executions = StepExecution.objects.filter(run=run)
        for execution in executions:
            succeeded = StepAttempt.objects.filter(execution=execution, status="succeeded")
            assert succeeded.count() <= 1, (execution.node, list(succeeded))
        stuck = executions.filter(status__in=[StepStatus.ENQUEUED, StepStatus.RUNNING])
        assert not stuck.exists(), list(stuck.values_list("node", "status"))
        data = RunContext.objects.get(pk=run.pk).data
        for key, value in data.items():
            writes = ContextWrite.objects.filter(run=run, key=key).order_by("id")
            assert writes.filter(overwrite=False).count() == 1, (key, list(writes))
            last = writes.last()
            assert last is not None
            assert last.value == value, key
        assert set(ContextWrite.objects.filter(run=run).values_list("key", flat=True)) == set(data)


@contextlib.contextmanager
def database_cut() -> Iterator[None]:
    """The test database unreachable for the block's duration, for every process (this
    one too): new connections refused, open ones terminated. The server keeps running
    (other work shares it); connections are allowed again however the block ends."""
    settings = connection.settings_dict
    name = settings["NAME"]
    admin = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    quoted = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(quoted))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        connection.close()  # this process's, terminated
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(quoted))
        admin.close()
