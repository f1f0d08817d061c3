"""A healthy step is never reclaimed: not when its body starves its own heartbeat thread,
not after the database was away for longer than the reclaim time. And what the engine
makes RQ keep in Redis expires."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from rq.registry import FailedJobRegistry

from pipelines.conf import get_settings
from pipelines.engine.delivery import FAILURE_TTL, get_queue
from pipelines.models import RunStatus, StepAttempt, StepExecution
from tests.conftest import wait_for
from tests.faults.conftest import assert_invariants, database_cut
from tests.testapp import fault_pipelines as f

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def history(run) -> dict[str, list[tuple[int, str]]]:
    rows = StepAttempt.objects.filter(execution__run=run).order_by("execution_id", "number")
    found: dict[str, list[tuple[int, str]]] = {}
    for step, number, status in rows.values_list("execution__step", "number", "status"):
        found.setdefault(step, []).append((number, status))
    return found


def test_a_body_holding_the_gil_past_the_reclaim_time_runs_once(fault_workers, finished):
    """``sum(range(n))`` is one C call: the work horse's own heartbeat thread gets no turn
    while it runs. The forking worker's process beats for it instead."""
    reclaim_after = get_settings().reclaim_after
    run = f.GilPipeline.trigger({"n": 8e8})  # about 8 s here; reclaim_after is 3 s
    wait_for(lambda: f.marks(run.pk, "gil-start"), 30, "the C call to start")

    run = finished(run, timeout=120)

    assert run.status == RunStatus.SUCCEEDED, run.error
    bodies = (len(f.marks(run.pk, "gil-start")), len(f.marks(run.pk, "gil-end")))
    assert bodies == (1, 1)  # one body, never a second
    assert history(run)["GilHog"] == [(1, "succeeded")]
    assert StepExecution.objects.get(run=run, step="GilHog").crash_count == 0
    gil = StepAttempt.objects.get(execution__run=run, execution__step="GilHog")
    assert gil.finished_at is not None
    assert gil.started_at is not None
    # It did hold the GIL past the reclaim time: the test shows what it claims to.
    assert (gil.finished_at - gil.started_at).total_seconds() > reclaim_after
    assert_invariants(run)


def test_no_step_is_reclaimed_after_a_database_outage_longer_than_the_reclaim_time(
    fault_workers, finished
):
    if connection.vendor != "postgresql":
        pytest.skip("the outage is cut with PostgreSQL's ALLOW_CONNECTIONS")
    outage = 3 * get_settings().reclaim_after
    runs = [f.VictimPipeline.trigger({"hold": outage + 6}) for _ in range(2)]
    for run in runs:  # both running, one on each worker
        wait_for(lambda run=run: f.marks(run.pk, "victim-start"), 30, f"run {run.pk} to start")

    with database_cut():
        time.sleep(outage)

    runs = [finished(run, timeout=90) for run in runs]
    for run in runs:
        assert run.status == RunStatus.SUCCEEDED, run.error
        errors = StepAttempt.objects.filter(execution__run=run).values_list("error", flat=True)
        assert history(run)["Victim"] == [(1, "succeeded")], list(errors)
        assert StepExecution.objects.get(run=run, step="Victim").crash_count == 0
        assert len(f.marks(run.pk, "victim-start")) == 1  # its body ran once
        assert_invariants(run)


def test_what_rq_keeps_of_the_engines_jobs_expires(fault_workers, finished, fault_env):
    """Work horses that die leave failed jobs in RQ (their job hash, an entry in the
    failed registry, a result stream): each expires after FAILURE_TTL. Jobs that ran
    leave nothing."""
    crashing = finished(f.SelfKillerPipeline.trigger({}), timeout=90)
    fine = [finished(f.VictimPipeline.trigger({"hold": 0})) for _ in range(3)]
    assert crashing.status == RunStatus.FAILED
    assert all(r.status == "succeeded" for r in fine)
    conn = get_queue("pipelines").connection

    failed = FailedJobRegistry("pipelines", connection=conn)
    failed_ids = failed.get_job_ids()
    assert len(failed_ids) == 3, failed_ids  # the three killed work horses
    for score in dict(conn.zrange(failed.key, 0, -1, withscores=True)).values():
        assert score <= time.time() + FAILURE_TTL + 60
    job_keys = sorted(k.decode() for k in conn.scan_iter("rq:job:*"))
    assert job_keys == sorted(f"rq:job:{jid}" for jid in failed_ids)  # no job that ran stays
    kept = job_keys + [k.decode() for k in conn.scan_iter("rq:results:*")]
    assert any(k.startswith("rq:results:") for k in kept)
    for key in kept:
        assert 0 < conn.ttl(key) <= FAILURE_TTL, key
