"""What ``run.context``, the steering calls on a run (``cancel``, ``resume``, ``rerun``,
``send_event``) and ``Pipeline.trigger`` do: they call the services, and a steering call
updates the run it was called on in place."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from pipelines import services
from pipelines.context import ContextReader
from pipelines.models import PipelineRun


class RunContextHandle(ContextReader):
    """``run.context``: writes commit immediately, under the same write-once rule as a
    step's, checked under the run's lock."""

    def __init__(self, run: PipelineRun) -> None:
        super().__init__(run.pk, run.input)

    def set(self, key: str, value: Any, *, overwrite: bool = False) -> None:
        services.context_set(run_id=self.run_id, key=key, value=value, overwrite=overwrite)

    async def aset(self, key: str, value: Any, *, overwrite: bool = False) -> None:
        await sync_to_async(self.set)(key, value, overwrite=overwrite)


class Controls:
    def trigger(self, pipeline: str, input: Any, idempotency_key: str | None) -> PipelineRun:
        return services.run_trigger(pipeline=pipeline, input=input, idempotency_key=idempotency_key)

    def context(self, run: PipelineRun) -> RunContextHandle:
        return RunContextHandle(run)

    def cancel(self, run: PipelineRun, reason: str) -> None:
        services.run_cancel(run_id=run.pk, reason=reason)
        run.refresh_from_db()

    def resume(self, run: PipelineRun) -> None:
        services.run_resume(run_id=run.pk)
        run.refresh_from_db()

    def rerun(self, run: PipelineRun) -> PipelineRun:
        return services.run_rerun(run_id=run.pk)

    def send_event(self, run: PipelineRun, name: str, payload: Any) -> None:
        services.run_send_event(run_id=run.pk, name=name, payload=payload)
        run.refresh_from_db()
