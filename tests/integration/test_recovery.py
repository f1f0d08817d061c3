"""The sweeper's passes, driven by hand with ``manage.py pipelines recover``."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from pipelines.engine import lease
from pipelines.engine.delivery import get_queue
from pipelines.models import RunStatus, StepAttempt, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def test_recover_re_enqueues_an_execution_whose_job_redis_lost(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    redis_conn.flushdb()  # the job is gone; the row still says it must run
    StepExecution.objects.filter(pk=execution.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=1)
    )
    out = StringIO()

    call_command("pipelines", "recover", stdout=out)

    assert "reenqueued: 1" in out.getvalue()
    assert get_queue("pipelines").job_ids == [f"pipelines-{execution.pk}-1"]
    call_command("pipelines", "recover", stdout=out)  # a queued job is left alone
    assert get_queue("pipelines").count == 1
    assert drive(run).status == RunStatus.SUCCEEDED


def test_recover_reclaims_a_silent_running_step_as_a_new_attempt(redis_conn):
    from tests.helpers.engine import claim as _claim

    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    assert _claim(execution.pk, 1, "doomed-worker") is not None
    StepExecution.objects.filter(pk=execution.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=1)
    )

    call_command("pipelines", "recover", stdout=StringIO())

    execution.refresh_from_db()
    assert (execution.status, execution.attempt, execution.crash_count) == ("enqueued", 2, 1)
    attempt = StepAttempt.objects.get(execution=execution, number=1)
    assert attempt.status == "crashed"
    assert attempt.error.startswith("worker died: no heartbeat since")
    assert f"pipelines-{execution.pk}-2" in get_queue("pipelines").job_ids
    assert drive(run).status == RunStatus.SUCCEEDED


def test_recover_leaves_a_heartbeating_step_alone(redis_conn):
    from tests.helpers.engine import claim as _claim

    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    _claim(execution.pk, 1, "busy-worker")

    call_command("pipelines", "recover", stdout=StringIO())

    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == ("running", 1)


def test_only_one_holder_gets_the_sweeper_lease_until_it_expires():
    assert lease.acquire("test-lease", "a", ttl=30)
    assert not lease.acquire("test-lease", "b", ttl=30)
    assert lease.acquire("test-lease", "a", ttl=30)  # the holder extends it
    lease.release("test-lease", "a")
    assert lease.acquire("test-lease", "b", ttl=0.001)
    import time

    time.sleep(0.01)
    assert lease.acquire("test-lease", "a", ttl=30)  # b's lease expired


def test_recover_enqueues_a_retry_whose_scheduler_never_delivered_it(redis_conn):
    """RQ's scheduler process dies with its worker and is replaced only minutes later; a
    retry long past its time is enqueued directly instead of waiting for it."""
    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    redis_conn.flushdb()
    get_queue("pipelines").enqueue_in(  # a scheduled job nobody moves to the queue
        timedelta(hours=1),
        "pipelines.engine.tasks.execute_step",
        args=(execution.pk, 2),
        job_id=f"pipelines-{execution.pk}-2",
    )
    StepExecution.objects.filter(pk=execution.pk).update(
        status="retrying", attempt=2, retry_at=timezone.now() - timedelta(minutes=1)
    )

    call_command("pipelines", "recover", stdout=StringIO())

    assert f"pipelines-{execution.pk}-2" in get_queue("pipelines").job_ids
    assert drive(run).status == RunStatus.SUCCEEDED
