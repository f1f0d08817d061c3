"""The only functions RQ workers execute for this library."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from pipelines.engine.runner import run_batch, run_chain
from pipelines.exceptions import InvalidJobError


def _job_options() -> dict[str, Any]:
    job = get_current_job()
    if job is None:
        return {}
    return {
        "worker": job.worker_name or "",
        # Successors on the queue this job came from may run right here (see run_chain),
        # within the job's timeout: RQ stops the job past it.
        "queue": job.origin,
        "job_id": job.id,
        "job_budget": float(job.timeout) if job.timeout else None,
    }


def execute_step(execution_id: int, attempt: int) -> str:
    return run_chain(int(execution_id), int(attempt), **_job_options())


def execute_steps(items: list[list[int]]) -> str:
    """A batch of an expand's items: ``[[execution_id, attempt], ...]``."""
    if not isinstance(items, list) or not all(
        isinstance(item, list) and len(item) == 2 and all(type(n) is int for n in item)
        for item in items
    ):
        raise InvalidJobError("execute_steps takes a list of [execution_id, attempt] pairs")
    return run_batch([(item[0], item[1]) for item in items], **_job_options())
