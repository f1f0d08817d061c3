"""RQ worker and job classes that only ever run the engine's own function, with JSON.

``python manage.py rqworker pipelines`` uses them through the ``RQ`` setting. Whatever a
job planted in Redis asks for (another function, pickled data), it is refused, not run.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from pipelines.engine.enqueue import ENGINE_FUNCTION
from pipelines.exceptions import UnsafeJobError


class PipelineJob(Job):
    def _execute(self) -> Any:
        if self.func_name != ENGINE_FUNCTION or self.instance is not None:
            raise UnsafeJobError(
                f"refused job {self.id}: it names {self.func_name!r}, but pipeline workers "
                f"only run {ENGINE_FUNCTION}"
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


class PipelineWorker(_EngineOnly, Worker):
    """Forks a work horse per job (crash isolation); the default."""


class PipelineSimpleWorker(_EngineOnly, SimpleWorker):
    """Runs jobs in the worker process itself: faster, less isolated."""
