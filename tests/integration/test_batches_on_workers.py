"""Batch jobs of a big expand on real rqworker processes: every item runs once, the
collapse sees element order, and several workers share the batches."""

from __future__ import annotations

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
    # 640 // 64 = 10 items per job: the items ran in 64 batch jobs, on several workers.
    jobs = set(items.values_list("rq_job", flat=True))
    assert len(jobs) == 64
    assert all(job.startswith("pipelines-batch-") for job in jobs)
    assert len(set(items.values_list("worker", flat=True))) > 1
