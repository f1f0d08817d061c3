"""The only function RQ workers execute for this library."""

from __future__ import annotations

from rq import get_current_job

from pipelines.engine.runner import run_chain


def execute_step(execution_id: int, attempt: int) -> str:
    job = get_current_job()
    worker = (job.worker_name or "") if job else ""
    # Successors on the queue this job came from may run right here (see run_chain).
    return run_chain(
        int(execution_id), int(attempt), worker=worker, queue=job.origin if job else None
    )
