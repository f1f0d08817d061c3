"""The Celery baseline: the same no-op tasks on a Redis broker."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery(
    "bench",
    broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
    backend=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(payload: Any = None) -> Any:
    return payload


@app.task
def gather(outputs: list[Any]) -> int:
    return len(outputs)
