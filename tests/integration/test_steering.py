"""The steering calls on a run update the object they were called on, and return it."""

from __future__ import annotations

import pytest

from pipelines.models import RunStatus, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp import fault_pipelines as fp
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def test_cancel_updates_the_receiver(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    returned = run.cancel("stop")
    assert returned is run
    assert (run.status, run.error) == (RunStatus.CANCELLED, "stop")
    assert run.finished_at is not None


def test_resume_updates_the_receiver(redis_conn):
    run = drive(p.FailingPipeline.trigger({"n": 1}))
    assert run.status == RunStatus.FAILED
    started = run.started_at
    assert run.resume() is run
    assert (run.status, run.error, run.finished_at) == (RunStatus.RUNNING, "", None)
    assert run.started_at == started  # its duration counts from its first start


def test_send_event_updates_the_receiver(redis_conn):
    run = drive(fp.ApprovalPipeline.trigger({}))
    assert run.status == RunStatus.WAITING
    assert run.send_event("approved", {"by": "ops"}) is run
    assert run.status == RunStatus.RUNNING
    assert StepExecution.objects.get(run=run, step="Apply").status == "enqueued"
