"""How a run row and a pipeline class reach the services without importing them.

``models.py`` and ``pipeline.py`` sit below ``services.py`` (the services import them), yet
``run.cancel()``, ``run.context`` and ``Pipeline.trigger()`` must call the services. They
call the :class:`Steering` installed here when the app starts (``PipelinesConfig.ready``
installs :class:`pipelines.controls.Controls`): a dependency that points one way, where an
import would close a ring.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipelines.exceptions import PipelineError

PipelineRun = Any  # models.PipelineRun: models import this module, so not the reverse


class Steering(Protocol):
    def trigger(self, pipeline: str, input: Any, idempotency_key: str | None) -> PipelineRun: ...

    def context(self, run: PipelineRun) -> Any: ...

    def cancel(self, run: PipelineRun, reason: str) -> None: ...

    def resume(self, run: PipelineRun) -> None: ...

    def rerun(self, run: PipelineRun) -> PipelineRun: ...

    def send_event(self, run: PipelineRun, name: str, payload: Any) -> None: ...


_installed: list[Steering] = []


def install(steering: Steering) -> None:
    _installed[:] = [steering]


def steering() -> Steering:
    if not _installed:
        raise PipelineError(
            "the pipelines app is not ready: add 'pipelines' to INSTALLED_APPS and call "
            "django.setup() before triggering or steering runs"
        )
    return _installed[0]
