"""The Step base class: users subclass it and implement ``execute(self, payload)``."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pipelines.conf import get_settings
from pipelines.exceptions import DefinitionError

if TYPE_CHECKING:
    from pipelines.context import StepContext


@dataclass(frozen=True)
class RunInfo:
    """What a step knows about the run it belongs to."""

    id: int
    pipeline: str


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

    @classmethod
    def validate_class(cls) -> None:
        """Raise DefinitionError if the class cannot be run as a step."""
        name = cls.__qualname__
        if cls.execute is Step.execute:
            raise DefinitionError(f"step {name} has no execute(self, payload) method")
        try:
            inspect.signature(cls.execute).bind(object(), None)
        except TypeError:
            raise DefinitionError(
                f"step {name}: execute must take exactly one argument besides self, the "
                f"payload: def execute(self, payload)"
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
    def job_timeout(cls) -> int:
        return cls.timeout or get_settings().step_timeout
