"""The Step base class: users subclass it and implement ``execute(self, payload)``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pipelines.conf import get_settings
from pipelines.exceptions import DefinitionError

if TYPE_CHECKING:
    from pipelines.context import StepContext


def _never() -> bool:
    return False


@dataclass(frozen=True)
class RunInfo:
    """What a step knows about the run it belongs to. ``is_cancelled`` asks the database
    (the engine supplies it)."""

    id: int
    pipeline: str
    is_cancelled: Callable[[], bool] = field(default=_never, repr=False, compare=False)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    backoff: float
    backoff_max: float
    jitter: bool


class Step:
    """One unit of work in a pipeline.

    Policy is set with class attributes; ``None`` means the ``PIPELINES_*`` setting.
    """

    retries: ClassVar[int | None] = None
    retry_backoff: ClassVar[float | None] = None
    retry_backoff_max: ClassVar[float | None] = None
    retry_jitter: ClassVar[bool | None] = None
    queue: ClassVar[str | None] = None
    timeout: ClassVar[int | None] = None

    context: StepContext
    run: RunInfo
    attempt: int
    idempotency_key: str
    logger: logging.Logger

    def __init__(
        self, *, context: StepContext, run: RunInfo, attempt: int, idempotency_key: str
    ) -> None:
        self.context = context
        self.run = run
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.logger = logging.getLogger(f"pipelines.step.{type(self).__name__}")

    def execute(self, payload: Any) -> Any:
        raise NotImplementedError

    def compensate(self, output: Any) -> None:
        """Override to undo this step when its run halts or is cancelled; gets the output
        the step returned. Compensations run once each, newest first."""
        raise NotImplementedError

    @classmethod
    def has_compensation(cls) -> bool:
        return cls.compensate is not Step.compensate

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled: a long step should check it and stop early."""
        return self.run.is_cancelled()

    @classmethod
    def validate_class(cls) -> None:
        """Raise DefinitionError if the class cannot be run as a step."""
        name = cls.__qualname__
        if cls.execute is Step.execute:
            raise DefinitionError(f"step {name} has no execute(self, payload) method")
        for method, arg in (("execute", "payload"), ("compensate", "output")):
            try:
                inspect.signature(getattr(cls, method)).bind(object(), None)
            except TypeError:
                raise DefinitionError(
                    f"step {name}: {method} must take exactly one argument besides self, the "
                    f"{arg}: def {method}(self, {arg})"
                ) from None
        for attr in ("retries", "timeout"):
            value = getattr(cls, attr)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise DefinitionError(f"step {name}: {attr} must be an int >= 0, got {value!r}")
        if cls.timeout == 0:
            raise DefinitionError(f"step {name}: timeout must be a positive number of seconds")
        for attr in ("retry_backoff", "retry_backoff_max"):
            value = getattr(cls, attr)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise DefinitionError(f"step {name}: {attr} must be a number >= 0, got {value!r}")
        if cls.retry_jitter is not None and not isinstance(cls.retry_jitter, bool):
            raise DefinitionError(
                f"step {name}: retry_jitter must be True or False, got {cls.retry_jitter!r}"
            )
        if cls.queue is not None and (not isinstance(cls.queue, str) or not cls.queue):
            raise DefinitionError(f"step {name}: queue must be a queue name, got {cls.queue!r}")

    @classmethod
    def retry_policy(cls) -> RetryPolicy:
        conf = get_settings()
        return RetryPolicy(
            retries=conf.retries if cls.retries is None else cls.retries,
            backoff=conf.retry_backoff if cls.retry_backoff is None else cls.retry_backoff,
            backoff_max=(
                conf.retry_backoff_max if cls.retry_backoff_max is None else cls.retry_backoff_max
            ),
            jitter=conf.retry_jitter if cls.retry_jitter is None else cls.retry_jitter,
        )

    @classmethod
    def queue_name(cls) -> str:
        return cls.queue or get_settings().queue

    @classmethod
    def step_timeout(cls) -> int:
        """Seconds the body may run before it is stopped with StepTimeout."""
        return cls.timeout or get_settings().step_timeout

    @classmethod
    def job_timeout(cls) -> int:
        # RQ's own limit is only a backstop: the engine stops the body itself, and the
        # margin leaves time to record the outcome.
        return cls.step_timeout() + 60
