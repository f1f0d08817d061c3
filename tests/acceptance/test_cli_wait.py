"""``pipelines trigger --wait`` against real worker processes: the exit status is the
run's outcome, and a run that does not finish in time gives up with status 3."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.procs import ROOT, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def trigger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "pipelines", "trigger", *args],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wait_exits_with_the_runs_outcome(workers):
    ok = trigger("ChainPipeline", "--input", '{"n": 1}', "--wait", "--json", "--timeout", "60")
    data = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stderr
    assert (data["status"], data["steps_done"], data["steps_total"]) == ("succeeded", 3, 3)
    assert data["url"] == f"/pipelines/runs/{data['id']}/"

    failed = trigger("FailingPipeline", "--input", '{"n": 1}', "--wait", "--timeout", "60")
    assert failed.returncode == 1
    assert " (FailingPipeline) has failed\n" in failed.stdout
    assert "RuntimeError: boom on attempt 2" in failed.stderr


def test_wait_gives_up_with_status_3(workers):
    waiting = trigger("RoundTripPipeline", "--input", "{}", "--wait", "--timeout", "1")
    assert waiting.returncode == 3
    assert " (RoundTripPipeline) is " in waiting.stdout
    assert "after --timeout; it goes on" in waiting.stderr
