"""Workers dying, stalling, timing out or losing their database connection mid-step."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection

from pipelines.engine.lease import SWEEPER_LOCK_KEY
from pipelines.models import RunStatus, StepAttempt, StepExecution
from tests.conftest import wait_for
from tests.faults.conftest import assert_invariants
from tests.testapp import fault_pipelines as f

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def started(run, event: str = "victim-start", count: int = 1) -> list[dict[str, str]]:
    wait_for(lambda: len(f.marks(run.pk, event)) >= count, 30, f"{event} x{count}")
    return f.marks(run.pk, event)


def attempts(run, step: str) -> list[tuple[int, str]]:
    execution = StepExecution.objects.get(run=run, step=step)
    return list(
        StepAttempt.objects.filter(execution=execution)
        .order_by("number")
        .values_list("number", "status")
    )


def test_sigkill_of_the_work_horse_mid_step_is_reclaimed(fault_workers, finished):
    run = f.VictimPipeline.trigger({"hold": 60})
    horse = int(started(run)[0]["pid"])
    killed_at = time.monotonic()
    os.kill(horse, signal.SIGKILL)

    run = finished(run, timeout=60)
    recovery = time.monotonic() - killed_at

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attempts(run, "Victim") == [(1, "crashed"), (2, "succeeded")]
    assert run.context.get("victim_attempt") == 2  # the dead attempt's writes never landed
    assert recovery < 3.0 + 0.5 + 10  # reclaim_after + one sweep + the rest of the run
    assert_invariants(run)


def test_sigkill_of_the_whole_worker_mid_step_is_reclaimed_by_another(
    fault_workers, finished, tmp_path
):
    run = f.VictimPipeline.trigger({"hold": 60})
    horse = int(started(run)[0]["pid"])
    parent = next(p for p in fault_workers.procs if p.poll() is None and _is_parent(p.pid, horse))
    os.killpg(parent.pid, signal.SIGKILL)  # the worker, its scheduler, ...
    os.kill(horse, signal.SIGKILL)  # ... and its work horse: the machine is gone
    parent.wait()

    run = finished(run, timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attempts(run, "Victim") == [(1, "crashed"), (2, "succeeded")]
    assert_invariants(run)
    fault_workers.add(tmp_path)  # keep two workers for the next tests


def _is_parent(parent: int, child: int) -> bool:
    try:
        with open(f"/proc/{child}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1]) == parent
    except OSError:
        return False


def test_kill_right_after_the_commit_leaves_no_duplicate_step_or_write(fault_workers, finished):
    run = finished(f.CommitThenDiePipeline.trigger({}), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(f.marks(run.pk, "commit-then-die")) == 1  # the body ran once
    assert StepExecution.objects.filter(run=run, step="Finish").count() == 1
    assert attempts(run, "CommitThenDie") == [(1, "succeeded")]
    assert run.context.get("written_once") == 1
    assert_invariants(run)


def test_a_stale_attempt_finishing_after_its_retry_began_is_rejected(fault_workers, finished):
    run = f.VictimPipeline.trigger({"hold": 4})
    horse = int(started(run)[0]["pid"])
    parent = next(p for p in fault_workers.procs if p.poll() is None and _is_parent(p.pid, horse))
    # The machine freezes (a paused VM): the worker process, which heartbeats for its work
    # horse, and the horse. The step looks dead, and is not.
    os.kill(parent.pid, signal.SIGSTOP)
    os.kill(horse, signal.SIGSTOP)
    try:
        # A frozen sweeper would keep its lease until the database drops its session.
        release_sweeper_lease()
        started(run, count=2)  # attempt 2 runs elsewhere
        wait_for(lambda: run.refresh().is_finished, 30, "attempt 2 to finish the run")
    finally:
        os.kill(horse, signal.SIGCONT)
        os.kill(parent.pid, signal.SIGCONT)

    def stale_ended() -> bool:
        return any(m["attempt"] == "1" for m in f.marks(run.pk, "victim-end"))

    try:
        wait_for(stale_ended, 30, "attempt 1 to end")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nmarks: {f.marks(run.pk, 'victim-end')}\n{fault_workers.output()}"
        ) from None
    time.sleep(1)  # let it try to commit

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attempts(run, "Victim") == [(1, "crashed"), (2, "succeeded")]
    assert run.context.get("victim_attempt") == 2
    assert StepExecution.objects.filter(run=run, step="Finish").count() == 1
    assert_invariants(run)


def release_sweeper_lease() -> None:
    """End the database session holding the sweeper's lease (whoever holds it sweeps on
    after reconnecting, or another worker takes over). Elsewhere the lease expires."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND ((classid::bigint << 32) | objid::bigint) = %s",
            [SWEEPER_LOCK_KEY],
        )


def test_a_slow_healthy_step_is_not_reclaimed(fault_workers, finished):
    run = finished(f.VictimPipeline.trigger({"hold": 8}), timeout=60)  # > 2x reclaim_after

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attempts(run, "Victim") == [(1, "succeeded")]
    assert len(f.marks(run.pk, "victim-start")) == 1
    assert_invariants(run)


def test_a_step_that_kills_its_worker_every_time_spends_its_crash_budget(fault_workers, finished):
    run = finished(f.SelfKillerPipeline.trigger({}), timeout=90)

    assert run.status == RunStatus.FAILED
    assert "killed its worker 3 times (crash budget PIPELINES_CRASH_BUDGET=2)" in run.error
    assert attempts(run, "SelfKiller") == [(1, "crashed"), (2, "crashed"), (3, "crashed")]
    assert not StepExecution.objects.filter(run=run, step="Finish").exists()
    assert_invariants(run)


def test_a_step_over_its_timeout_is_stopped_and_retried_then_halts(fault_workers, finished):
    run = finished(f.TimeoutPipeline.trigger({}), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "StepTimeout: timed out after 1s" in run.error
    assert attempts(run, "Sleepy") == [(1, "timed_out"), (2, "timed_out")]
    assert_invariants(run)


def test_a_database_connection_terminated_mid_step_is_replaced_for_the_commit(
    fault_workers, finished
):
    """The body does not need the database while it runs; its commit finds the
    connection dead and goes through on a new one, so the body is not run again."""
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    run = f.VictimPipeline.trigger({"hold": 2})
    backend = int(started(run)[0]["backend"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        assert cursor.fetchone()[0] is True

    run = finished(run, timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attempts(run, "Victim") == [(1, "succeeded")]
    assert len(f.marks(run.pk, "victim-start")) == 1
    assert_invariants(run)
