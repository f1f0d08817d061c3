"""The only function RQ workers execute for this library."""

from __future__ import annotations

from rq import get_current_job

from pipelines.engine.runner import run_chain


def execute_step(execution_id: int, attempt: int) -> str:
    job = get_current_job()
    worker = (job.worker_name or "") if job else ""
    # Successors on the queue this job came from may run right here (see run_chain).
    # The job's timeout bounds how many steps it may run inline: RQ stops it past that.
    return run_chain(
        int(execution_id),
        int(attempt),
        worker=worker,
        queue=job.origin if job else None,
        job_id=job.id if job else "",
        job_budget=float(job.timeout) if job and job.timeout else None,
    )
