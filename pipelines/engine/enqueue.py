"""Hands step executions to RQ. Jobs carry only ``(execution_id, attempt)``."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from rq import Queue
from rq.serializers import JSONSerializer

ENGINE_FUNCTION = "pipelines.engine.tasks.execute_step"
logger = logging.getLogger("pipelines.enqueue")


@dataclass(frozen=True)
class Delivery:
    execution_id: int
    attempt: int
    queue: str
    timeout: int
    delay: float = 0.0
    # Recovered work (a reclaimed or lost job) goes ahead of the backlog: it has waited.
    at_front: bool = False


def job_id(execution_id: int, attempt: int) -> str:
    # One job id per attempt: re-enqueueing the same attempt overwrites the same job.
    return f"pipelines-{execution_id}-{attempt}"


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
        "result_ttl": 0,  # the database is the record; RQ results would only use memory
        "description": f"pipelines step execution {d.execution_id} attempt {d.attempt}",
    }


def enqueue(deliveries: Iterable[Delivery]) -> None:
    """Push jobs to Redis, one round trip per queue for immediate deliveries."""
    by_queue: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_queue[delivery.queue].append(delivery)
    for name, items in by_queue.items():
        queue = get_queue(name)
        now = [
            Queue.prepare_data(
                ENGINE_FUNCTION, timeout=d.timeout, at_front=d.at_front, **_job_options(d)
            )
            for d in items
            if d.delay <= 0
        ]
        if now:
            with queue.connection.pipeline() as pipe:
                queue.enqueue_many(now, pipeline=pipe)
                pipe.execute()
        for d in items:
            if d.delay > 0:
                # Needs a worker started with --with-scheduler to move it to the queue.
                queue.enqueue_in(
                    timedelta(seconds=d.delay),
                    ENGINE_FUNCTION,
                    job_timeout=d.timeout,
                    **_job_options(d),
                )


def _enqueue_logged(deliveries: list[Delivery]) -> None:
    try:
        enqueue(deliveries)
    except Exception:
        # The rows are committed and say these executions must run; a lost enqueue is
        # recovered from the database, so the caller's request must not fail here.
        logger.exception(
            "could not enqueue step executions %s", [d.execution_id for d in deliveries]
        )


def enqueue_on_commit(deliveries: list[Delivery]) -> None:
    """Enqueue once the current transaction commits; nothing if it rolls back."""
    if deliveries:
        transaction.on_commit(lambda: _enqueue_logged(deliveries))
