"""Running a pipeline in the test process, and building big runs, for tests and the
benchmarks: no worker processes."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from pipelines.engine.delivery import get_queue
from pipelines.engine.runner import run_execution
from pipelines.models import (
    ContextWrite,
    PipelineRun,
    RunContext,
    StepAttempt,
    StepExecution,
)


def drive(run: Any) -> Any:
    """Run every enqueued execution in this process until the run is finished (from the
    database's rows: what is in Redis does not matter)."""
    for _ in range(50):
        pending = StepExecution.objects.filter(
            run=run, status__in=["enqueued", "retrying"]
        ).order_by("id")
        if not pending:
            break
        for execution in pending:
            run_execution(execution.pk, execution.attempt, worker="in-process")
    run.refresh_from_db()
    return run


def run_queued_jobs(limit: int | None = None) -> list[str]:
    """Run the jobs in the pipelines queue in this process, as a worker would: up to
    ``limit`` of them, or until the queue is empty. Returns the function names in the
    order they ran."""
    queue = get_queue("pipelines")
    ran: list[str] = []
    while limit is None or len(ran) < limit:
        job_id = queue.connection.lpop(queue.key)
        if job_id is None:
            return ran
        job = queue.fetch_job(job_id.decode())
        assert job is not None
        ran.append(str(job.func_name))
        job.func(*job.args, **job.kwargs)
        if limit is None and len(ran) >= 1000:
            raise AssertionError("the queue never drained")
    return ran


def big_run(steps: int, keys: int) -> PipelineRun:
    """A finished-looking run with ``steps`` step executions (one attempt each) and
    ``keys`` context keys, written in bulk."""
    now = timezone.now()
    run = PipelineRun.objects.create(pipeline="ChainPipeline", input={"n": 1}, status="running")
    RunContext.objects.create(run=run, data={f"key-{i:04d}": i for i in range(keys)})
    executions = StepExecution.objects.bulk_create(
        StepExecution(
            run=run,
            node="Add.0",
            step="Add",
            status="succeeded",
            queue="pipelines",
            payload={"i": i},
            output={"i": i},
            started_at=now,
            finished_at=now,
        )
        for i in range(steps)
    )
    StepAttempt.objects.bulk_create(
        StepAttempt(execution=e, number=1, status="succeeded", started_at=now, finished_at=now)
        for e in executions
    )
    ContextWrite.objects.bulk_create(
        ContextWrite(
            run=run,
            key=f"key-{i:04d}",
            value=i,
            execution=executions[i % steps],
            step="Add.0",
            attempt=1,
            written_at=now,
        )
        for i in range(keys)
    )
    return run
