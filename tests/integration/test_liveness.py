"""The sweeper's view of liveness, pass by pass: started jobs, the database's clock, and
the pause after the database was away."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from pipelines.engine import clock, runner, sweeper
from pipelines.engine.enqueue import get_queue, job_id
from pipelines.models import StepExecution
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_job_rq_has_started_is_not_lost_while_its_worker_is_registered(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    queue = get_queue("pipelines")
    jid = job_id(execution.pk, 1)
    # A worker took it (out of the queue, "started") and has not claimed it yet: the
    # backlog case, where the claim comes seconds after RQ starts the job.
    redis_conn.lrem(queue.key, 0, jid)
    redis_conn.hset(f"rq:job:{jid}", mapping={"status": "started", "worker_name": "busy"})
    redis_conn.hset("rq:worker:busy", "state", "busy")

    assert sweeper.sweep().reenqueued == []
    assert sweeper.sweep().reenqueued == []
    assert queue.job_ids == []

    redis_conn.delete("rq:worker:busy")  # the worker died; its key expired
    assert sweeper.sweep().reenqueued == [execution.pk]
    assert queue.job_ids == [jid]


@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_job_that_failed_inside_rq_is_lost(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    queue = get_queue("pipelines")
    jid = job_id(execution.pk, 1)
    redis_conn.lrem(queue.key, 0, jid)
    redis_conn.hset(f"rq:job:{jid}", mapping={"status": "failed", "worker_name": "busy"})
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
            claimed = runner._claim(execution.pk, execution.attempt, "skewed-worker")
            assert claimed is not None
            assert sweeper.sweep().reclaimed == []  # a fresh claim is alive
            # Silent for longer than the reclaim time, by the database's clock: dead.
            StepExecution.objects.filter(pk=execution.pk).update(
                heartbeat_at=clock.ago(2 * sweeper.get_settings().reclaim_after)
            )
            assert sweeper.sweep().reclaimed == [execution.pk]
        execution.refresh_from_db()
    assert execution.attempt == 3


def test_a_sweeper_reclaims_only_after_reaching_the_database_for_the_reclaim_time(
    redis_conn,
):
    thread = sweeper.SweeperThread("test-holder")
    reclaim_after = sweeper.get_settings().reclaim_after
    calls: list[bool] = []

    def pass_at(seconds: float, fails: int = 0) -> None:
        tries = [0]

        def sweep(*, reclaim: bool, memory: sweeper.SweepMemory) -> sweeper.SweepReport:
            tries[0] += 1
            if tries[0] <= fails:
                raise OperationalError("the database is away")
            calls.append(reclaim)
            return sweeper.SweepReport()

        with (
            mock.patch.object(sweeper.time, "monotonic", return_value=1000.0 + seconds),
            mock.patch.object(sweeper, "sweep", sweep),
        ):
            thread._pass(0.5)

    pass_at(0)  # just started: it has not seen the database for long
    pass_at(reclaim_after)
    pass_at(reclaim_after + 1, fails=2)  # a new connection fails too: an outage
    pass_at(reclaim_after + 2)  # back
    pass_at(2 * reclaim_after + 1)
    pass_at(2 * reclaim_after + 2)
    pass_at(2 * reclaim_after + 3, fails=1)  # a dropped connection, replaced at once

    assert calls == [False, True, False, False, True, True]
    connection.close()
