"""Batch jobs of a big expand on real rqworker processes: every item runs once, the
collapse sees element order, and several workers share the batches."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import override_settings

from pipelines.models import RunStatus, StepAttempt, StepExecution
from tests.testapp import pipelines as p

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.portable,
    pytest.mark.redis,
    pytest.mark.workers,
]
WORKER_COUNT = 3
WORKER_ENV = {"PIPELINES_TEST_MAX_EXPAND": "1000"}


@override_settings(PIPELINES_MAX_EXPAND=1000)
def test_a_big_expand_runs_in_shared_batches(workers, finished):
    run = finished(p.ExpandPipeline.trigger({"count": 640}), timeout=120)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * i for i in range(640)]
    items = StepExecution.objects.filter(run=run, step="Square")
    assert items.count() == 640
    assert StepAttempt.objects.filter(execution__in=items).count() == 640  # each ran once
    # 640 // 64 = 10 items per job: the first 10 run in the job of the step that expanded
    # (no round trip through RQ), the others in 63 batch jobs, on several workers. Items a
    # job's time budget does not reach, or that the sweeper takes from a batch it has seen
    # running for the reclaim time (a slow database: SQLite under load), get jobs of their
    # own; they stay few.
    expanding = StepExecution.objects.get(run=run, step="Items")
    by_job = Counter(items.values_list("rq_job", flat=True))
    own_jobs = {f"pipelines-{pk}-1" for pk in items.values_list("pk", flat=True)}
    batch_jobs = {job for job in by_job if job.startswith("pipelines-batch-")}
    assert set(by_job) <= batch_jobs | own_jobs | {expanding.rq_job}
    assert len(batch_jobs) <= 63
    assert by_job[expanding.rq_job] >= 1
    assert sum(by_job[job] for job in batch_jobs) + by_job[expanding.rq_job] >= 540
    assert len(set(items.values_list("worker", flat=True))) > 1
