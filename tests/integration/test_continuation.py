"""Eager chain continuation hands back whatever it does not run, and the run lock does not
deadlock with context writes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from pipelines.engine.delivery import get_queue
from pipelines.engine.runner import run_chain
from pipelines.models import StepAttempt, StepExecution
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def queued_ids() -> list[str]:
    return get_queue("pipelines").job_ids


@pytest.mark.portable
@pytest.mark.parametrize("eager_steps", [1, 2])
def test_a_successor_past_the_step_budget_goes_back_to_the_queue(redis_conn, eager_steps):
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    redis_conn.flushdb()

    with override_settings(PIPELINES_EAGER_STEPS=eager_steps):
        run_chain(first.pk, 1, worker="w", queue="pipelines")

    ran = list(StepExecution.objects.filter(run=run, status="succeeded").order_by("id"))
    assert len(ran) == eager_steps  # 1 turns continuation off
    waiting = StepExecution.objects.get(run=run, status="enqueued")
    assert queued_ids() == [f"pipelines-{waiting.pk}-1"]  # enqueued, not left to the sweeper


@pytest.mark.portable
def test_a_successor_that_does_not_fit_the_job_timeout_is_enqueued(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    redis_conn.flushdb()

    run_chain(first.pk, 1, worker="w", queue="pipelines", job_budget=1.0)

    assert StepExecution.objects.filter(run=run, status="succeeded").count() == 1
    waiting = StepExecution.objects.get(run=run, status="enqueued")
    assert queued_ids() == [f"pipelines-{waiting.pk}-1"]


@pytest.mark.portable
def test_a_legacy_attempt_row_does_not_block_the_sweeper(redis_conn):
    """Rows of running attempts written by an earlier release are replaced, not collided
    with, when the attempt ends."""
    from django.core.management import call_command

    from tests.helpers.engine import claim as _claim

    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    assert _claim(execution.pk, 1, "old-release-worker") is not None
    StepAttempt.objects.create(execution=execution, number=1, status="running")
    StepExecution.objects.filter(pk=execution.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=1)
    )

    call_command("pipelines", "recover", stdout=open("/dev/null", "w"))  # noqa: SIM115

    attempt = StepAttempt.objects.get(execution=execution, number=1)
    assert attempt.status == "crashed"
    execution.refresh_from_db()
    assert (execution.status, execution.attempt) == ("enqueued", 2)


def test_outside_context_write_and_step_commit_do_not_deadlock(redis_conn):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    from pipelines.context import StepContext
    from pipelines.engine.outcome import Outcome
    from pipelines.engine.rows import lock_run
    from pipelines.engine.store import get_store

    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    errors: list[BaseException] = []
    locked = threading.Event()

    def step_commit() -> None:
        try:
            with transaction.atomic():
                lock_run(run.pk)  # the step's commit takes the run lock first...
                locked.set()
                time.sleep(0.5)  # ...while the outside write goes ahead
                staged = StepContext(run.pk, run.input)
                staged.set("from-step", 1)
                get_store().commit_staged(execution, 1, Outcome(None, staged))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def outside_write() -> None:
        try:
            locked.wait(5)
            run.context.set("from-outside", 2)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=step_commit), threading.Thread(target=outside_write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert run.context.to_dict() == {"from-step": 1, "from-outside": 2}
