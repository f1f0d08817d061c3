"""The only function RQ workers execute for this library."""

from __future__ import annotations

from rq import get_current_job

from pipelines.engine.runner import run_execution


def execute_step(execution_id: int, attempt: int) -> str:
    job = get_current_job()
    worker = (job.worker_name or "") if job else ""
    return run_execution(int(execution_id), int(attempt), worker=worker)
