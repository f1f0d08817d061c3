"""Hands step executions to RQ. Jobs carry only ``(execution_id, attempt)``."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from rq import Queue
from rq.serializers import JSONSerializer

ENGINE_FUNCTION = "pipelines.engine.tasks.execute_step"
BATCH_FUNCTION = "pipelines.engine.tasks.execute_steps"
ENGINE_FUNCTIONS = (ENGINE_FUNCTION, BATCH_FUNCTION)
logger = logging.getLogger("pipelines.enqueue")
# What the engine lets RQ keep of its jobs. The database is the record of every attempt,
# so a result is not kept at all, and a job that failed inside RQ (its work horse killed
# or stopped, a job refused) only for a day, for inspection: without a limit RQ keeps
# failed jobs and their result streams for a year.
RESULT_TTL = 0
FAILURE_TTL = 24 * 3600


@dataclass(frozen=True)
class Delivery:
    execution_id: int
    attempt: int
    queue: str
    timeout: int
    delay: float = 0.0
    # Recovered work (a reclaimed or lost job) goes ahead of the backlog: it has waited.
    at_front: bool = False


@dataclass(frozen=True)
class Batch:
    """One job for several first attempts of an expand's items, run one after another
    (see runner.run_batch). Each item's ``rq_job`` names this job until it is claimed,
    so the sweeper can tell whether the job that should run it is still queued."""

    items: tuple[tuple[int, int], ...]  # (execution_id, attempt)
    queue: str
    timeout: int
    job_id: str


def job_id(execution_id: int, attempt: int) -> str:
    # One job id per attempt: re-enqueueing the same attempt overwrites the same job.
    return f"pipelines-{execution_id}-{attempt}"


BATCH_PREFIX = "pipelines-batch-"


def batch_job_id(barrier_id: int, first_branch: int) -> str:
    return f"{BATCH_PREFIX}{barrier_id}-{first_branch}"


_queues: dict[tuple[str, str, int], Queue] = {}


def close_queues() -> None:
    """Disconnect the cached queues' Redis pools (at exit: an embedded Redis shuts down
    only once its last client has gone)."""
    for queue in _queues.values():
        queue.connection.connection_pool.disconnect()
    _queues.clear()


def get_queue(name: str) -> Queue:
    """One queue (and Redis connection pool) per process and configuration: building them
    per enqueue opened a new Redis connection for every step."""
    import os

    import django_rq
    from django.conf import settings

    key = (name, repr(settings.RQ_QUEUES.get(name)), os.getpid())
    queue = _queues.get(key)
    if queue is None:
        queue = _queues[key] = django_rq.get_queue(name, serializer=JSONSerializer)
    return queue


def _job_options(d: Delivery) -> dict[str, Any]:
    return {
        "args": (d.execution_id, d.attempt),
        "job_id": job_id(d.execution_id, d.attempt),
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
        "description": f"pipelines step execution {d.execution_id} attempt {d.attempt}",
    }


def _prepared(d: Delivery | Batch) -> Any:
    """The job for an immediate delivery, for ``Queue.enqueue_many``."""
    if isinstance(d, Batch):
        return Queue.prepare_data(
            BATCH_FUNCTION,
            args=([list(item) for item in d.items],),
            job_id=d.job_id,
            timeout=d.timeout,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"pipelines step executions {', '.join(str(i) for i, _ in d.items)}",
        )
    return Queue.prepare_data(
        ENGINE_FUNCTION, timeout=d.timeout, at_front=d.at_front, **_job_options(d)
    )


def enqueue(deliveries: Iterable[Delivery | Batch]) -> None:
    """Push jobs to Redis, one round trip per queue for immediate deliveries."""
    by_queue: dict[str, list[Delivery | Batch]] = defaultdict(list)
    for delivery in deliveries:
        by_queue[delivery.queue].append(delivery)
    for name, items in by_queue.items():
        queue = get_queue(name)
        delayed = [d for d in items if isinstance(d, Delivery) and d.delay > 0]
        now = [_prepared(d) for d in items if not (isinstance(d, Delivery) and d.delay > 0)]
        if now:
            with queue.connection.pipeline() as pipe:
                queue.enqueue_many(now, pipeline=pipe)
                pipe.execute()
        for d in delayed:
            # Needs a worker started with --with-scheduler to move it to the queue.
            queue.enqueue_in(
                timedelta(seconds=d.delay),
                ENGINE_FUNCTION,
                job_timeout=d.timeout,
                **_job_options(d),
            )


def _enqueue_logged(deliveries: list[Delivery | Batch]) -> None:
    try:
        enqueue(deliveries)
    except Exception:
        # The rows are committed and say these executions must run; a lost enqueue is
        # recovered from the database, so the caller's request must not fail here.
        logger.exception(
            "could not enqueue step executions %s",
            [d.execution_id if isinstance(d, Delivery) else d.items for d in deliveries],
        )


def enqueue_on_commit(deliveries: Sequence[Delivery | Batch]) -> None:
    """Enqueue once the current transaction commits; nothing if it rolls back."""
    if deliveries:
        jobs = list(deliveries)
        transaction.on_commit(lambda: _enqueue_logged(jobs))
