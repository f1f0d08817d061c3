"""What a django-rq or Sidekiq user looks at first: every pipelines queue with its depth,
its oldest waiting step, the retries held by RQ's scheduler, and the workers serving it.
A fixed number of Redis calls per queue and one database query in all."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Min
from rq import Worker
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from pipelines.engine import doctor
from pipelines.engine.delivery import get_queue
from pipelines.models import StepExecution, StepStatus


@dataclass(frozen=True)
class WorkerRow:
    name: str
    hostname: str
    pid: int | None
    state: str
    engine: bool  # started as a pipelines worker (a plain rqworker fails step jobs)


@dataclass
class QueueRow:
    name: str
    depth: int = 0  # jobs waiting in Redis
    scheduled: int = 0  # retries waiting for their backoff (RQ's scheduler)
    waiting_steps: int = 0  # steps the database says are enqueued
    oldest_waiting: datetime | None = None
    scheduler: str = ""  # who holds RQ's scheduler lock for the queue, or ""
    workers: list[WorkerRow] = field(default_factory=list)


def queues() -> list[QueueRow]:
    names = doctor.pipeline_queues()
    waiting = {
        row["queue"]: row
        for row in StepExecution.objects.filter(status=StepStatus.ENQUEUED, queue__in=names)
        .values("queue")
        .annotate(n=Count("id"), oldest=Min("enqueued_at"))
        .order_by()
    }
    rows = []
    for name in names:
        queue = get_queue(name)
        conn = queue.connection
        workers = Worker.all(queue=queue)
        with conn.pipeline() as pipe:
            for worker in workers:
                pipe.hget(worker.key, doctor.ENGINE_MARK)
            pipe.get(RQScheduler.get_locking_key(name))
            *marks, lock = pipe.execute()
        row = QueueRow(
            name,
            depth=queue.count,
            scheduled=ScheduledJobRegistry(queue=queue).count,
            scheduler=lock.decode(errors="replace") if lock else "",
            workers=[
                WorkerRow(w.name, w.hostname or "", w.pid, str(w.get_state()), bool(mark))
                for w, mark in zip(workers, marks, strict=True)
            ],
        )
        if name in waiting:
            row.waiting_steps = waiting[name]["n"]
            row.oldest_waiting = waiting[name]["oldest"]
        rows.append(row)
    return rows
