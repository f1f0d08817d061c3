"""The sweeper's view of liveness, pass by pass: started jobs, the database's clock, and
the pause after the database was away."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from pipelines.conf import get_settings
from pipelines.engine import clock, sweeper
from pipelines.engine.delivery import get_queue, job_id
from pipelines.engine.witness import witness
from pipelines.models import Reachability, StepExecution
from tests.helpers.engine import claim
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def _taken(redis_conn, status: str, worker: str) -> tuple[StepExecution, str]:
    """A chain's first step, whose job a worker took out of the queue; RQ now says
    ``status`` of the job, run by ``worker``. Returns the execution and the job id."""
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    jid = job_id(execution.pk, 1)
    redis_conn.lrem(get_queue("pipelines").key, 0, jid)
    redis_conn.hset(f"rq:job:{jid}", mapping={"status": status, "worker_name": worker})
    return execution, jid


@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_job_rq_has_started_is_not_lost_while_its_worker_is_registered(redis_conn):
    # Started and not claimed yet: the backlog case, where the claim comes seconds after
    # RQ starts the job.
    execution, jid = _taken(redis_conn, "started", "busy")
    redis_conn.hset("rq:worker:busy", "state", "busy")

    assert sweeper.sweep().reenqueued == []
    assert sweeper.sweep().reenqueued == []
    assert get_queue("pipelines").job_ids == []

    redis_conn.delete("rq:worker:busy")  # the worker died; its key expired
    assert sweeper.sweep().reenqueued == [execution.pk]
    assert get_queue("pipelines").job_ids == [jid]


@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_started_job_that_never_claims_is_lost_after_the_reclaim_time(redis_conn):
    """Its worker died between RQ starting the job and the claim, and its key has not
    expired yet (RQ keeps it a minute and more)."""
    execution, jid = _taken(redis_conn, "started", "gone")
    redis_conn.hset("rq:worker:gone", "state", "busy")
    memory = sweeper.SweepMemory()

    assert sweeper.sweep(memory=memory).reenqueued == []
    assert sweeper.sweep(memory=memory).reenqueued == []
    memory.started[jid] -= get_settings().reclaim_after  # as if seen that long ago

    assert sweeper.sweep(memory=memory).reenqueued == [execution.pk]
    assert get_queue("pipelines").job_ids == [jid]


@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_job_that_failed_inside_rq_is_lost(redis_conn):
    execution, _ = _taken(redis_conn, "failed", "busy")
    redis_conn.hset("rq:worker:busy", "state", "idle")

    assert sweeper.sweep().reenqueued == [execution.pk]


def test_this_hosts_clock_decides_nothing(redis_conn):
    """Everything a claim, a heartbeat and a pass write or compare is the database's
    time: a host whose clock is an hour off (either way) changes no decision."""
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    real_now = timezone.now
    for skew in (timedelta(hours=1), -timedelta(hours=1)):
        with mock.patch("django.utils.timezone.now", lambda skew=skew: real_now() + skew):
            claimed = claim(execution.pk, execution.attempt, "skewed-worker")
            assert claimed is not None
            assert sweeper.sweep().reclaimed == []  # a fresh claim is alive
            # Silent for longer than the reclaim time, by the database's clock: dead.
            StepExecution.objects.filter(pk=execution.pk).update(
                heartbeat_at=clock.ago(2 * get_settings().reclaim_after)
            )
            assert sweeper.sweep().reclaimed == [execution.pk]
        execution.refresh_from_db()
    assert execution.attempt == 3


def test_silence_means_death_only_once_the_database_was_reachable_for_the_reclaim_time():
    reclaim_after = get_settings().reclaim_after
    record = Reachability.objects.filter(name="database")

    assert witness() is False  # the first sweeper ever: the record starts now
    record.update(since=clock.ago(reclaim_after + 1))
    assert witness() is True  # reached without a gap for the reclaim time
    assert witness() is True  # a sweeper that starts now inherits the record
    # Nobody reached the database for a while (an outage, or no worker ran): over again.
    record.update(seen_at=clock.ago(60))
    assert witness() is False
    assert witness() is False
    record.update(since=clock.ago(reclaim_after + 1))
    assert witness() is True


def test_a_sweeper_pass_reclaims_a_silent_step_only_when_the_witness_allows(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    assert claim(execution.pk, 1, "silent-worker") is not None
    silent = clock.ago(2 * get_settings().reclaim_after)
    StepExecution.objects.filter(pk=execution.pk).update(heartbeat_at=silent)
    thread = sweeper.SweeperThread("test-holder")
    try:
        thread._pass(0.5)  # the database has just come back, as far as anyone knows
        execution.refresh_from_db()
        assert (execution.status, execution.attempt) == ("running", 1)

        Reachability.objects.update(since=clock.ago(get_settings().reclaim_after + 1))
        thread._pass(0.5)
        execution.refresh_from_db()
        assert (execution.status, execution.attempt, execution.crash_count) == ("enqueued", 2, 1)
    finally:
        connection.close()  # releases the sweeper's advisory lock
