"""Redis down, flushed or restarted: the database still knows what must run."""

from __future__ import annotations

import time

import pytest

from pipelines.models import RunStatus, StepExecution
from tests.conftest import wait_for
from tests.faults.conftest import assert_invariants
from tests.testapp import fault_pipelines as f

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def test_redis_down_during_the_commit_enqueue_is_recovered(fault_env, fault_workers, finished):
    server = fault_env
    run = f.VictimPipeline.trigger({"hold": 2})
    wait_for(lambda: f.marks(run.pk, "victim-start"), 30, "the victim to start")
    server.stop()  # the step commits while Redis is gone: its next step cannot be enqueued
    wait_for(lambda: f.marks(run.pk, "victim-end"), 30, "the victim to finish")
    wait_for(
        lambda: StepExecution.objects.filter(run=run, step="Finish").exists(),
        30,
        "the commit to create the next step",
    )
    time.sleep(1)
    server.start()  # an empty Redis: every job it had is gone

    run = finished(run, timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert StepExecution.objects.filter(run=run, step="Finish").count() == 1
    assert len(f.marks(run.pk, "finish")) == 1
    assert_invariants(run)


def test_flushall_mid_run_loses_queued_jobs_and_they_are_recovered(
    fault_env, fault_workers, finished
):
    run = f.FanoutPipeline.trigger({"count": 10})
    wait_for(lambda: f.marks(run.pk, "item"), 30, "the first items to start")
    fault_env.client().flushall()

    run = finished(run, timeout=90)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * 10 for i in range(10)]
    items = StepExecution.objects.filter(run=run, step="SlowItem")
    assert items.count() == 10
    assert run.context.get("collected") == 10
    assert_invariants(run)


def test_redis_restarted_mid_run(fault_env, fault_workers, finished):
    server = fault_env
    run = f.FanoutPipeline.trigger({"count": 8})
    wait_for(lambda: f.marks(run.pk, "item"), 30, "the first items to start")
    server.stop()
    time.sleep(1.5)
    server.start()

    run = finished(run, timeout=90)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * 10 for i in range(8)]
    assert_invariants(run)
    # The workers survived the restart and still take new work.
    again = finished(f.VictimPipeline.trigger({}), timeout=60)
    assert again.status == RunStatus.SUCCEEDED, again.error
