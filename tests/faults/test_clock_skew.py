"""Hosts whose clocks are minutes apart: the sweeper's host and the step workers' hosts
are skewed in opposite directions (libfaketime), and the database server has the right
time. No healthy step is reclaimed, a dead one is reclaimed in the usual time, and an
event deadline passes when it is due, whichever way the sweeper's clock is off."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from pipelines.engine.lease import SWEEPER_LOCK_KEY
from pipelines.exceptions import EventNotExpectedError
from pipelines.models import RunStatus, StepAttempt, StepExecution
from tests.conftest import WorkerPool, wait_for
from tests.faults.conftest import assert_invariants
from tests.helpers.procs import ROOT
from tests.helpers.redis_server import PrivateRedis
from tests.testapp import fault_pipelines as f

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SKEW_MINUTES = 5

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.faults,
    pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs Debian's faketime package"),
]


def clock_off_by(minutes: int) -> dict[str, str]:
    """The environment of a process whose wall clock is ``minutes`` off. Its monotonic
    clock is left alone (see tests/helpers/faketime_site)."""
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"{minutes:+d}m",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": f"{ROOT / 'tests' / 'helpers' / 'faketime_site'}{os.pathsep}{ROOT}",
    }


def lease_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            [SWEEPER_LOCK_KEY],
        )
        return bool(cursor.fetchone()[0])


@pytest.fixture(params=[SKEW_MINUTES, -SKEW_MINUTES], ids=["sweeper-ahead", "sweeper-behind"])
def skewed_workers(
    request: pytest.FixtureRequest,
    fault_env: PrivateRedis,
    django_db_setup: None,
    tmp_path: Path,
) -> Iterator[WorkerPool]:
    """A worker that only sweeps, its clock ``param`` minutes off, started first so that it
    holds the sweeper's lease; then two step workers whose clocks are off the other way."""
    if connection.vendor != "postgresql":
        pytest.skip("who sweeps is read from PostgreSQL's advisory locks")
    redis_env = {"REDIS_URL": fault_env.url}
    sweeper = WorkerPool(1, ["other"], extra_env={**redis_env, **clock_off_by(request.param)})
    steps = WorkerPool(2, ["pipelines"], extra_env={**redis_env, **clock_off_by(-request.param)})
    try:
        sweeper.start(tmp_path)
        wait_for(lease_held, 30, "the skewed sweeper to take the lease")
        steps.start(tmp_path)
        yield steps
    finally:
        steps.stop()
        sweeper.stop()
        connection.close()  # the next test's workers must find the lease free


def crashed(*runs) -> list[str]:
    return list(
        StepAttempt.objects.filter(execution__run__in=runs, status="crashed").values_list(
            "execution__step", flat=True
        )
    )


def test_healthy_steps_on_skewed_hosts_are_not_reclaimed(skewed_workers, finished):
    runs = [f.VictimPipeline.trigger({"hold": 10}) for _ in range(2)]  # reclaim_after is 3 s

    runs = [finished(run, timeout=90) for run in runs]

    assert crashed(*runs) == []
    for run in runs:
        assert run.status == RunStatus.SUCCEEDED, run.error
        errors = StepAttempt.objects.filter(execution__run=run).values_list("error", flat=True)
        assert len(f.marks(run.pk, "victim-start")) == 1, list(errors)
        assert StepExecution.objects.get(run=run, step="Victim").crash_count == 0
        assert_invariants(run)


def test_a_dead_step_on_a_skewed_host_is_reclaimed_in_the_usual_time(skewed_workers, finished):
    run = f.VictimPipeline.trigger({"hold": 60})
    wait_for(lambda: f.marks(run.pk, "victim-start"), 30, "the step to start")
    os.kill(int(f.marks(run.pk, "victim-start")[0]["pid"]), signal.SIGKILL)

    # Well within the skew: a sweeper that read its own clock would wait minutes more.
    run = finished(run, timeout=SKEW_MINUTES * 60 / 4)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert crashed(run) == ["Victim"]
    assert_invariants(run)


def test_event_deadlines_set_on_skewed_hosts_pass_when_due(skewed_workers, finished):
    patient = f.ApprovalPipeline.trigger({"timeout": 60})
    hasty = f.ApprovalPipeline.trigger({"timeout": 2})
    for run in (patient, hasty):
        wait_for(lambda run=run: run.refresh().status == "waiting", 30, "the step to wait")

    # The hasty one times out well within the skew ...
    hasty = finished(hasty, timeout=SKEW_MINUTES * 60 / 4)
    assert hasty.status == RunStatus.FAILED
    assert "timed out waiting for event 'approved'" in hasty.error
    # ... and meanwhile the patient one is still waiting, well before its minute is up.
    try:
        patient.send_event("approved", {"by": "ops"})
    except EventNotExpectedError as exc:
        pytest.fail(f"the deadline passed early: {exc}")
    patient = finished(patient, timeout=30)
    assert patient.status == RunStatus.SUCCEEDED, patient.error
    assert patient.output == {"applied_by": "ops"}
