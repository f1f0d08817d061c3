"""Operators steering runs on real workers: cancel with compensation, stopping steps that
ignore the cancel, event waits, resume, re-run, and racing idempotent triggers."""

from __future__ import annotations

import re
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pipelines.exceptions import EventNotExpectedError, InvalidTransitionError
from pipelines.models import PipelineRun, RunStatus, StepExecution
from tests.conftest import wait_for
from tests.faults.conftest import assert_invariants
from tests.helpers.procs import spawn_json, worker_env
from tests.testapp import fault_pipelines as f

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def compensations_done(run) -> bool:
    pending = StepExecution.objects.filter(run=run, kind="compensation").exclude(
        status__in=["succeeded", "failed"]
    )
    return run.refresh().is_finished and not pending.exists()


def test_cancel_while_running_runs_compensations_newest_first_and_starts_nothing(
    fault_workers,
):
    run = f.CancelPipeline.trigger({})
    wait_for(lambda: f.marks(run.pk, "long-work"), 30, "the long step to start")

    run.cancel(reason="customer changed their mind")
    wait_for(lambda: compensations_done(run), 30, "compensations to finish")
    wait_for(lambda: f.marks(run.pk, "saw-cancel"), 10, "the step to see self.cancelled")
    wait_for(
        lambda: not StepExecution.objects.filter(run=run, status="running").exists(),
        10,
        "the long step to end",
    )

    assert run.status == RunStatus.CANCELLED
    assert run.error == "customer changed their mind"
    assert [m["step"] for m in f.marks(run.pk, "compensate")] == ["Pay", "Book"]
    pay, book = (
        StepExecution.objects.get(run=run, kind="compensation", step=name)
        for name in ("Pay", "Book")
    )
    assert pay.finished_at <= book.started_at  # one at a time, newest completion first
    assert (pay.payload, book.payload) == ({"payment": "P-1"}, {"booking": "B-1"})
    assert run.context.get("booking_cancelled") == "B-1"  # compensations see the context
    assert not f.marks(run.pk, "ship")
    assert not StepExecution.objects.filter(run=run, step="Ship").exists()
    assert_invariants(run)
    with pytest.raises(InvalidTransitionError, match="only pending, running or waiting runs"):
        run.cancel()


def test_a_step_ignoring_the_cancel_is_stopped_after_the_grace_period(fault_workers):
    run = f.StubbornCancelPipeline.trigger({})
    wait_for(lambda: f.marks(run.pk, "stubborn"), 30, "the stubborn step to start")
    cancelled_at = time.monotonic()
    run.cancel()

    stubborn = StepExecution.objects.get(run=run, step="Stubborn")
    wait_for(lambda: stubborn.refresh_from_db() or stubborn.status == "cancelled", 30, "stop")
    assert time.monotonic() - cancelled_at >= 2.0  # PIPELINES_CANCEL_GRACE in the tests
    assert stubborn.error == "stopped: run cancelled"
    assert stubborn.attempts.get().error == "stopped: run cancelled"
    wait_for(lambda: compensations_done(run), 30, "compensations to finish")
    assert [m["step"] for m in f.marks(run.pk, "compensate")] == ["Book"]
    assert_invariants(run)


def test_a_run_waits_for_an_event_and_resumes_with_its_payload(fault_workers, finished):
    run = f.ApprovalPipeline.trigger({})
    wait_for(lambda: run.refresh().status == RunStatus.WAITING, 30, "the run to wait")
    waiting = StepExecution.objects.get(run=run, step="AwaitApproval")
    assert (waiting.status, waiting.event_name) == ("waiting", "approved")
    assert run.context.get("requested") is True  # its writes committed when it paused
    with pytest.raises(EventNotExpectedError, match="not waiting for event 'rejected'; it waits"):
        run.send_event("rejected", {})

    out = StringIO()
    call_command(
        "pipelines", "send-event", str(run.pk), "approved", "--payload", '{"by": "ops"}', stdout=out
    )
    # The worker may finish the run before the command reads it back.
    assert re.match(
        rf"event 'approved' delivered; run {run.pk} \(ApprovalPipeline\) "
        r"(is running|has succeeded)\n",
        out.getvalue(),
    )
    run = finished(run, timeout=30)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"applied_by": "ops"}
    assert StepExecution.objects.get(pk=waiting.pk).output == {"by": "ops"}
    assert_invariants(run)


def test_an_event_that_never_comes_times_the_wait_out(fault_workers, finished):
    run = finished(f.ApprovalPipeline.trigger({"timeout": 1}), timeout=30)

    assert run.status == RunStatus.FAILED
    assert "timed out waiting for event 'approved'" in run.error
    assert_invariants(run)


def test_a_failed_run_resumes_from_its_failed_step(fault_workers, finished):
    run = finished(f.GatePipeline.trigger({}), timeout=30)
    assert run.status == RunStatus.FAILED
    assert "RuntimeError: gate closed" in run.error

    (f.fault_dir() / f"gate-{run.pk}").touch()
    run = finished(run.resume(), timeout=30)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.error == ""
    assert len(f.marks(run.pk, "gate")) == 2
    assert StepExecution.objects.filter(run=run, step="Prepare").count() == 1  # kept
    gate = StepExecution.objects.get(run=run, step="Gate")
    assert list(gate.attempts.values_list("number", "status")) == [(1, "failed"), (2, "succeeded")]
    assert run.context.get("gate_passed_on") == 2
    assert_invariants(run)
    with pytest.raises(InvalidTransitionError, match="only failed runs resume"):
        run.resume()


def test_rerun_starts_a_new_run_with_the_same_input(fault_workers, finished):
    first = finished(f.VictimPipeline.trigger({"hold": 0, "tag": "x"}), timeout=30)
    out = StringIO()
    call_command("pipelines", "rerun", str(first.pk), stdout=out)
    second = PipelineRun.objects.exclude(pk=first.pk).latest("id")

    assert f"run {second.pk} (VictimPipeline)" in out.getvalue()
    assert second.input == first.input
    assert finished(second, timeout=30).status == RunStatus.SUCCEEDED
    assert_invariants(first, second)


def test_racing_idempotent_triggers_create_one_run(fault_env, fault_workers, finished):
    start_at = str(time.time() + 3)
    command = [sys.executable, "-m", "tests.helpers.dbproc", "trigger", "VictimPipeline", "k-1"]
    results = spawn_json(
        [[*command, start_at] for _ in range(8)],
        worker_env(REDIS_URL=fault_env.url),
        timeout=60,
    )
    ids = {result["run_id"] for result in results}

    assert len(ids) == 1
    assert PipelineRun.objects.filter(idempotency_key="k-1").count() == 1
    run = finished(PipelineRun.objects.get(pk=ids.pop()), timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert StepExecution.objects.filter(run=run, step="Prepare").count() == 1
    assert_invariants(run)


def test_command_errors_say_how_to_fix_them(fault_workers):
    with pytest.raises(CommandError, match="no run with id 999999"):
        call_command("pipelines", "cancel", "999999")
    with pytest.raises(CommandError, match="RUN must be an id made of the digits 0-9"):
        call_command("pipelines", "resume", "abc")
    run = f.ApprovalPipeline.trigger({})
    with pytest.raises(CommandError, match=r"--payload is not valid JSON: .* line 1 column 2"):
        call_command("pipelines", "send-event", str(run.pk), "approved", "--payload", "{x")
    run.cancel()
