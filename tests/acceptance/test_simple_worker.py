"""The in-process worker class runs whole pipelines too (burst mode, one process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.models import RunStatus, StepExecution
from tests.helpers.procs import ROOT, worker_env
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.workers]


def test_pipeline_simple_worker_drains_a_whole_run_in_burst_mode(redis_conn):
    run = p.DividePipeline.trigger({"n": 0})
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "pipelines",
            "--burst",
            "--worker-class",
            "pipelines.engine.worker.PipelineSimpleWorker",
        ],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == ["slow", "fast", "sub-flow"]
    workers = set(StepExecution.objects.filter(run=run).values_list("worker", flat=True))
    assert len(workers) == 1  # every step ran in the one burst worker
