"""Compensation after a halt: newest first, once each, failures recorded and shown."""

from __future__ import annotations

import pytest

from pipelines.models import RunStatus, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def test_a_failing_compensation_is_recorded_and_the_others_still_run(redis_conn):
    run = drive(p.SagaPipeline.trigger(None))

    assert run.status == RunStatus.FAILED
    compensations = list(StepExecution.objects.filter(run=run, kind="compensation").order_by("id"))
    assert [(c.step, c.status) for c in compensations] == [
        ("Charge", "failed"),  # newest completion first
        ("Reserve", "succeeded"),
    ]
    assert compensations[0].compensates.step == "Charge"
    assert "RuntimeError: refund of C-1 bounced" in compensations[0].error
    assert "Traceback" in compensations[0].attempts.get().traceback
    # The run says both what failed and which compensation failed.
    assert run.error.startswith("step Explodes.2 failed after 1 attempt: ValueError: out of stock")
    assert "compensation of Charge.1 failed: RuntimeError: refund of C-1 bounced" in run.error
    assert run.context.get("released") == "R-1"
    assert StepExecution.objects.get(run=run, kind="halt").status == "succeeded"
    # Each step is compensated once: driving again starts nothing new.
    drive(run)
    assert StepExecution.objects.filter(run=run, kind="compensation").count() == 2


def test_resume_is_refused_once_a_run_was_compensated(redis_conn):
    from pipelines.exceptions import InvalidTransitionError

    run = drive(p.SagaPipeline.trigger(None))

    with pytest.raises(InvalidTransitionError, match="was compensated"):
        run.resume()
