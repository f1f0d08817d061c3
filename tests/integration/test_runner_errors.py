"""Errors after a claim end as recorded failures, never as executions stuck in running."""

from __future__ import annotations

import pytest
from django.test import override_settings

from pipelines.engine import rows, runner
from pipelines.models import RunStatus, StepExecution, StepStatus
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def test_a_bad_route_key_fails_the_step_without_retrying(redis_conn):
    run = drive(p.BadRoutePipeline.trigger(None))

    assert run.status == RunStatus.FAILED
    assert "Route key must be a string of 1 to 200 characters, got ['not', 'a', 'key']" in (
        run.error
    )
    step = StepExecution.objects.get(run=run, step="BadRoute")
    assert (step.status, step.attempt, step.attempts.count()) == ("failed", 1, 1)
    handler = StepExecution.objects.get(run=run, kind="halt")
    assert handler.status == StepStatus.SUCCEEDED


def test_a_run_whose_pipeline_changed_fails_clearly_and_runs_the_halt_handler(redis_conn):
    run = p.FailingPipeline.trigger({"n": 1})
    StepExecution.objects.filter(run=run).update(node="Vanished.7", step="Vanished")

    run = drive(run)

    assert run.status == RunStatus.FAILED
    assert f"pipeline FailingPipeline changed while run {run.pk} was in flight" in run.error
    assert "no node Vanished.7 running Vanished any more" in run.error
    first = StepExecution.objects.get(run=run, node="Vanished.7")
    assert (first.status, first.attempts.count()) == ("failed", 1)
    assert StepExecution.objects.get(run=run, kind="halt").status == "succeeded"


def test_an_error_while_committing_is_recorded_and_retried(redis_conn, monkeypatch):
    # Both commit paths (PostgreSQL's single statement, and the general transaction)
    # build the successor with new_execution.
    real_new_execution = rows.new_execution
    calls = {"n": 0}

    def flaky_new_execution(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real_new_execution(*args, **kwargs)

    run = p.ChainPipeline.trigger({"n": 1})
    monkeypatch.setattr(rows, "new_execution", flaky_new_execution)
    first = StepExecution.objects.get(run=run)
    assert runner.run_execution(first.pk, 1) == "retrying"

    first.refresh_from_db()
    assert (first.status, first.attempt) == (StepStatus.RETRYING, 2)
    attempt = first.attempts.get(number=1)
    assert attempt.status == "failed"
    assert "could not commit the step's result: RuntimeError: database went away" in attempt.error
    assert not run.context.has("double-3")  # nothing of the failed commit is left

    run = drive(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"n": 6, "seen": ["Add", "AddAgain", "Double"]}


def test_joined_outputs_over_the_size_limit_halt_the_run(redis_conn):
    # Each element's output and the input fit in 11 bytes; the joined list does not.
    with override_settings(PIPELINES_MAX_VALUE_BYTES=11):
        run = drive(p.ExpandPipeline.trigger({"count": 5}))

    assert run.status == RunStatus.FAILED
    assert "joined outputs for Gather.2: value is 12 bytes, over the limit of 11 bytes" in run.error
    assert not StepExecution.objects.filter(run=run, step="Gather").exists()
