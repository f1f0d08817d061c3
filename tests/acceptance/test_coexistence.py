"""Pipelines next to a project's own RQ jobs and workers, with real worker processes.

* A plain ``rqworker`` on a pipelines queue cannot run step jobs: within one sweep the
  pipelines worker's log, the overview page and ``pipelines doctor`` say so, and the step
  runs once a pipelines worker serves the queue.
* The project's ordinary django-rq jobs (pickle and JSON queues, ``@job``, scheduled)
  keep running on plain ``rqworker`` processes while pipelines workers run.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from pipelines.engine import doctor
from pipelines.models import RunStatus
from tests.conftest import WorkerPool, wait_for
from tests.helpers.procs import ROOT, worker_env
from tests.testapp import jobs
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.workers]


def start_rqworker(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"rqworker-{'-'.join(args)}.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *args],
        cwd=ROOT,
        env=worker_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_plain_rqworker_on_the_pipelines_queue_is_reported_and_steps_run_later(
    redis_conn, tmp_path
):
    plain, plain_log = start_rqworker(tmp_path, "pipelines")
    pool = WorkerPool(1, ["other"])  # a pipelines worker, but not on this queue: its sweeper
    try:
        pool.start(tmp_path)
        run = p.ChainPipeline.trigger({"n": 1})

        def reported() -> bool:
            text = " ".join(str(problem) for problem in doctor.diagnose())
            return "is not a pipelines worker" in text and "failed in RQ" in text

        wait_for(reported, 30, "the doctor to report the plain worker and its failed job")
        assert "DeserializationError" in plain_log.read_text()
        wait_for(lambda: "is not a pipelines worker" in pool.output(), 10, "the sweeper's warning")

        done = subprocess.run(
            [sys.executable, "manage.py", "pipelines", "doctor"],
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "is not a pipelines worker" in done.stderr
        assert "manage.py pipelines worker" in done.stderr

        staff = Client()
        ops = User.objects.create_user("ops", is_staff=True)
        ops.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
        staff.force_login(ops)
        page = staff.get("/pipelines/").content.decode()
        assert "Steps cannot run on some queues" in page
        assert "is not a pipelines worker" in page

        stop(plain)
        proper = WorkerPool(1, ["pipelines"])
        proper.start(tmp_path)
        try:
            wait_for(lambda: run.refresh().is_finished, 60, "the run to finish")
            assert run.status == RunStatus.SUCCEEDED, run.error
            wait_for(lambda: doctor.diagnose() == [], 30, "the doctor to be satisfied")
        finally:
            proper.stop()
    finally:
        stop(plain)
        pool.stop()


def test_ordinary_django_rq_jobs_keep_running_beside_pipelines(redis_conn, tmp_path):
    day = datetime.date(2026, 1, 2)
    pickled = django_rq.get_queue("pickled")
    pickled.enqueue(jobs.record, str(tmp_path / "pickled"), day, "pickle")
    pickled.enqueue_in(timedelta(seconds=1), jobs.record, str(tmp_path / "later"), day, "later")
    jobs.record_json.delay(str(tmp_path / "json"), "json")
    run = p.ChainPipeline.trigger({"n": 1})

    pool = WorkerPool(1, ["pipelines"])
    plain_pickle, pickle_log = start_rqworker(tmp_path, "pickled", "--with-scheduler")
    plain_json, json_log = start_rqworker(
        tmp_path, "default", "--serializer", "rq.serializers.JSONSerializer"
    )
    try:
        pool.start(tmp_path)
        for name, text in (("pickled", "pickle 2026-01-02"), ("later", "later 2026-01-02")):
            wait_for((tmp_path / name).exists, 30, f"the {name} job")
            assert (tmp_path / name).read_text() == text
        wait_for((tmp_path / "json").exists, 30, "the @job JSON job")
        assert (tmp_path / "json").read_text() == "json"
        wait_for(lambda: run.refresh().is_finished, 60, "the run to finish")
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert "Error" not in pickle_log.read_text() + json_log.read_text()
    finally:
        stop(plain_pickle)
        stop(plain_json)
        pool.stop()
