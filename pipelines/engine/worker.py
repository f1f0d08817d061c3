"""RQ worker and job classes that only ever run the engine's own function, with JSON.

``python manage.py rqworker pipelines`` uses them through the ``RQ`` setting. Whatever a
job planted in Redis asks for (another function, pickled data, callbacks, webhooks), it
is refused, not run.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from pipelines.engine.enqueue import ENGINE_FUNCTION
from pipelines.exceptions import UnsafeJobError


class PipelineJob(Job):
    # RQ imports and calls callback functions, and sends webhooks, named by the job itself;
    # the engine never sets them, so a job that carries any was planted: ignore them all.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _execute(self) -> Any:
        smuggled = [
            name
            for name, value in (
                ("on_success", self._success_callback_name),
                ("on_failure", self._failure_callback_name),
                ("on_stopped", self._stopped_callback_name),
                ("webhooks", self.webhooks),
            )
            if value
        ]
        if self.func_name != ENGINE_FUNCTION or self.instance is not None or smuggled:
            extra = f" with {', '.join(smuggled)}" if smuggled else ""
            raise UnsafeJobError(
                f"refused job {self.id}: it names {self.func_name!r}{extra}, but pipeline "
                f"workers only run {ENGINE_FUNCTION}"
            )
        return super()._execute()


class _EngineOnly:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # django-rq's rqworker passes its default (pickle) serializer explicitly.
        kwargs["serializer"] = JSONSerializer
        kwargs["job_class"] = PipelineJob
        super().__init__(*args, **kwargs)
        for queue in self.queues:  # type: ignore[attr-defined]
            queue.serializer = JSONSerializer
            queue.job_class = PipelineJob

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Recovery runs inside every worker: no cron job to remember. The lease makes sure
        # only one of them sweeps at a time.
        from pipelines.engine.sweeper import SweeperThread

        sweeper = SweeperThread(holder=f"{self.name}@{self.hostname}")  # type: ignore[attr-defined]
        sweeper.start()
        try:
            return super().work(*args, **kwargs)  # type: ignore[misc]
        finally:
            sweeper.stopping.set()
            sweeper.join(timeout=10)


class PipelineWorker(_EngineOnly, Worker):
    """Forks a work horse per job (crash isolation); the default."""


class PipelineSimpleWorker(_EngineOnly, SimpleWorker):
    """Runs jobs in the worker process itself: faster, less isolated."""
