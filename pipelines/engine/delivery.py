"""Hands step executions to RQ: one job per execution, or one per batch of an expand's
items, enqueued when the transaction that created them commits (but for what the commit
kept for its own worker to run next: see ``OrmStore.create``). Jobs carry only
``(execution_id, attempt)`` pairs."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from pipelines.conf import get_settings
from pipelines.dsl import Graph
from pipelines.lifecycle import StepStatus
from pipelines.models import StepExecution

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


_BATCH_PREFIX = "pipelines-batch-"


def batch_job_id(expanding_id: int, first_branch: int) -> str:
    """The job of the items from ``first_branch`` on of the expand that execution
    ``expanding_id`` made (it succeeds once, so it expands once). Each item's ``rq_job``
    names it until the item is claimed, so the sweeper can tell whether that job still
    lives."""
    return f"{_BATCH_PREFIX}{expanding_id}-{first_branch}"


def batch_of(execution: StepExecution) -> str | None:
    """The job that should run ``execution``'s first attempt along with others, if any:
    a batch job, or the running job that created the item and keeps it to run next
    (:meth:`OrmStore.create <pipelines.engine.store.orm.OrmStore.create>`). A claim
    overwrites ``rq_job`` with the job that claimed it."""
    if execution.status == StepStatus.ENQUEUED and execution.attempt == 1 and execution.rq_job:
        return execution.rq_job
    return None


def assign_batches(executions: list[StepExecution], expanding_id: int, size: int) -> None:
    """Give the new items of execution ``expanding_id``'s expand batch jobs of ``size``
    (1: a job each)."""
    if size <= 1:
        return
    for start in range(0, len(executions), size):
        for item in executions[start : start + size]:
            item.rq_job = batch_job_id(expanding_id, start)


def delivery(
    execution: StepExecution, graph: Graph | None, *, at_front: bool = False, delay: float = 0.0
) -> Delivery:
    """The job for one execution's current attempt. Without a graph (its pipeline is gone)
    the job gets the default timeout: the claim fails the run with a clear reason."""
    try:
        timeout = graph.node(execution.node).step.job_timeout() if graph else None
    except KeyError:
        timeout = None
    return Delivery(
        execution.pk,
        execution.attempt,
        execution.queue,
        timeout or get_settings().step_timeout + 60,
        delay=delay,
        at_front=at_front,
    )


def deliveries(created: list[StepExecution], graph: Graph) -> list[Delivery | Batch]:
    """The jobs for new executions: one each, or one per batch for expand items."""
    jobs: list[Delivery | Batch] = []
    batches: dict[str, list[StepExecution]] = {}
    for execution in created:
        batch = batch_of(execution)
        if batch is None:
            jobs.append(delivery(execution, graph))
        else:
            batches.setdefault(batch, []).append(execution)
    for name, members in batches.items():
        first = delivery(members[0], graph)
        items = tuple((e.pk, e.attempt) for e in members)
        jobs.append(Batch(items, first.queue, first.timeout, name))
    return jobs


_queues: dict[tuple[str, str, int], Queue] = {}


_workers: dict[str, tuple[float, int]] = {}
WORKERS_TTL = 5.0  # seconds a count of a queue's workers is reused


def workers_serving(queue_name: str) -> int:
    """How many workers listen on a queue (RQ's registry), counted at most every few
    seconds per process; 0 when unknown (Redis unreachable)."""
    now = time.monotonic()
    cached = _workers.get(queue_name)
    if cached is not None and now - cached[0] < WORKERS_TTL:
        return cached[1]
    try:
        queue = get_queue(queue_name)
        count = Worker.count(connection=queue.connection, queue=queue)
    except Exception:
        logger.debug("could not count the workers of queue %s", queue_name, exc_info=True)
        count = 0
    _workers[queue_name] = (now, count)
    return count


def close_queues() -> None:
    """Disconnect the cached queues' Redis pools (at exit: an embedded Redis shuts down
    only once its last client has gone)."""
    for queue in _queues.values():
        queue.connection.connection_pool.disconnect()
    _queues.clear()


def get_queue(name: str) -> Queue:
    """One queue (and Redis connection pool) per process and configuration: building them
    per enqueue opened a new Redis connection for every step."""
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


# While set (pipelines.testing), deliveries are appended here instead of going to Redis:
# a user's test runs the steps itself, from the rows, in the test process.
_captured: list[Delivery | Batch] | None = None


@contextmanager
def capture_deliveries() -> Iterator[list[Delivery | Batch]]:
    """Keep deliveries out of Redis for the block; yields the list they are added to."""
    global _captured
    previous, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = previous


def enqueue(deliveries: Iterable[Delivery | Batch]) -> None:
    """Push jobs to Redis, one round trip per queue for immediate deliveries."""
    if _captured is not None:
        _captured.extend(deliveries)
        return
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
