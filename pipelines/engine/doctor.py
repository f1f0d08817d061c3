"""Is every pipelines queue served by a worker that can run its steps?

A plain ``rqworker`` (pickle serializer, RQ's own job class) that listens on a pipelines
queue takes step jobs and fails them before they reach the engine; the run would sit
``pending`` with no hint. The doctor finds that from Redis and the database: workers on a
pipelines queue without the engine's mark, step jobs that failed inside RQ while their
execution still waits for them, and queues with jobs but no pipelines worker at all.

The sweeper logs what it finds on every pass that changes the picture; the overview page
and ``manage.py pipelines doctor`` show it on demand.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import redis
from django.conf import settings
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from pipelines import registry
from pipelines.conf import get_settings
from pipelines.engine.delivery import get_queue
from pipelines.models import StepExecution, StepStatus

logger = logging.getLogger("pipelines.doctor")
# A field of RQ's worker hash that engine workers set at birth (see engine.worker).
ENGINE_MARK = "pipelines_engine"
WORKER_HINT = (
    "Stop it and serve pipelines queues with `python manage.py pipelines worker` (or "
    "`rqworker QUEUE --worker-class pipelines.engine.worker.PipelineWorker`); keep plain "
    "rqworker processes on your other queues."
)
_STEP_JOB = re.compile(r"^pipelines-(\d+)-(\d+)$")
FAILED_JOBS_SCANNED = 50


@dataclass(frozen=True)
class Problem:
    queue: str
    message: str
    hint: str = WORKER_HINT

    def __str__(self) -> str:
        return f"queue {self.queue!r}: {self.message}"


def pipeline_queues() -> list[str]:
    """The queues steps go to (those missing from RQ_QUEUES are ``check``'s E002)."""
    names = {get_settings().queue}
    for pipeline in registry.all_pipelines():
        names.update(step.queue_name() for step in pipeline.graph.steps())
    return sorted(name for name in names if name in getattr(settings, "RQ_QUEUES", {}))


def _stuck_failures(queue_name: str, conn: redis.Redis) -> list[str]:
    """Step jobs RQ failed while their execution still waits for that very attempt:
    a worker that could not run them took them (the engine records its own failures)."""
    failed = FailedJobRegistry(queue=get_queue(queue_name))
    ids = failed.get_job_ids(0, FAILED_JOBS_SCANNED - 1, desc=True)
    wanted = {}
    for job_id in ids:
        match = _STEP_JOB.match(job_id)
        if match:
            wanted[job_id] = (int(match[1]), int(match[2]))
    if not wanted:
        return []
    waiting = set(
        StepExecution.objects.filter(
            pk__in=[pk for pk, _ in wanted.values()],
            status__in=[StepStatus.ENQUEUED, StepStatus.RETRYING],
        ).values_list("pk", "attempt")
    )
    errors = []
    for job_id, key in wanted.items():
        if key not in waiting or conn.hget(f"rq:job:{job_id}", "status") != b"failed":
            continue
        job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
        result = job.latest_result()
        lines = (result.exc_string or "").strip().splitlines() if result else []
        errors.append(f"{job_id}: {lines[-1] if lines else 'failed in RQ'}")
    return errors


def _queue_problems(name: str) -> list[Problem]:
    queue = get_queue(name)
    conn = queue.connection
    workers = Worker.all(queue=queue)
    with conn.pipeline() as pipe:
        for worker in workers:
            pipe.hget(worker.key, ENGINE_MARK)
        marks = pipe.execute()
    problems = [
        Problem(
            name,
            f"worker {worker.name} (pid {worker.pid} on {worker.hostname}) is not a "
            f"pipelines worker: it fails step jobs (wrong serializer and job class) and "
            f"runs no sweeper",
        )
        for worker, mark in zip(workers, marks, strict=True)
        if not mark
    ]
    stuck = _stuck_failures(name, conn)
    if stuck:
        problems.append(
            Problem(
                name,
                f"{len(stuck)} step job(s) failed in RQ before reaching the engine, so their "
                f"steps wait to be enqueued again (last: {stuck[0]})",
            )
        )
    waiting = queue.count
    if waiting and all(not mark for mark in marks):
        problems.append(
            Problem(
                name,
                f"{waiting} job(s) wait and no pipelines worker serves this queue",
                hint="Start `python manage.py pipelines worker` for this queue.",
            )
        )
    return problems


def diagnose() -> list[Problem]:
    problems: list[Problem] = []
    for name in pipeline_queues():
        try:
            problems += _queue_problems(name)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            problems.append(Problem(name, f"Redis is unreachable: {exc}", hint="Check REDIS."))
    return problems


_last_logged: tuple[str, ...] = ()


def log_problems() -> list[Problem]:
    """Log the problems when they change (not on every pass); return them."""
    global _last_logged
    problems = diagnose()
    current = tuple(str(p) for p in problems)
    if current != _last_logged:
        for problem in problems:
            logger.warning("%s. %s", problem, problem.hint)
        if not problems and _last_logged:
            logger.warning("every pipelines queue is served by pipelines workers again")
        _last_logged = current
    return problems
