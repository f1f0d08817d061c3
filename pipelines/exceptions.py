"""Every error the library raises derives from :class:`PipelineError`."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error raised by the pipelines library."""


class DefinitionError(PipelineError):
    """Raised at import time (and by ``manage.py check``) when a pipeline definition is
    invalid: a transition used out of place, a step class without ``execute``, a duplicate
    pipeline name, a bad step policy."""


class UnknownPipelineError(PipelineError, LookupError):
    """Raised when a pipeline name is not registered (typo, or its app's ``pipelines``
    module was not imported)."""


class InvalidValueError(PipelineError, ValueError):
    """Raised when a value that must be stored as strict JSON is not: NaN/Infinity, a NUL
    or lone surrogate in a string, a non-JSON type, too deep or too large. The message names
    where the value was headed and the path inside it."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class ContextValueError(InvalidValueError):
    """Raised by ``context.set`` for a bad key or a value that is not strict JSON."""


class InputValueError(InvalidValueError):
    """Raised by ``Pipeline.trigger`` when the input is not strict JSON."""


class OutputValueError(InvalidValueError):
    """Raised (and recorded as the attempt's error) when a step returns a value that is not
    strict JSON, or a value the next transition cannot use (``expand`` needs a list)."""


class OverwriteError(PipelineError):
    """Raised by ``context.set`` when the key already has a value and ``overwrite=True`` was
    not given. The message names the key and who wrote it."""

    def __init__(self, key: str, writer: str) -> None:
        super().__init__(
            f"context[{key!r}] is already set (written by {writer}); context keys are "
            f"write-once, pass overwrite=True to replace the value"
        )
        self.key = key
        self.writer = writer


class MissingStepError(PipelineError):
    """Raised when a run's stored definition names a step class that no longer exists
    (its module or class was removed or renamed by a deploy); the run fails with it."""


class ContextKeyError(PipelineError, KeyError):
    """Raised by ``context[key]`` when the context has no such key (``get`` returns a
    default instead)."""


class ReadOnlyError(PipelineError, TypeError):
    """Raised when code tries to mutate ``context.input`` (the run's trigger input)."""


class InvalidTransitionError(PipelineError):
    """Raised when a run or step execution is asked to move to a status its current status
    does not allow (for example succeeding a run that was cancelled)."""


class IdempotencyKeyReusedError(PipelineError):
    """Raised by ``trigger`` when an idempotency key already names a run of the pipeline
    that was triggered with a different input: returning that run would silently drop the
    new input. The message names the key and the run."""

    def __init__(self, *, pipeline: str, key: str, run_id: int) -> None:
        super().__init__(
            f"idempotency key {key!r} already names run {run_id} of {pipeline}, which was "
            f"triggered with a different input; use a new key for a new input"
        )
        self.pipeline = pipeline
        self.key = key
        self.run_id = run_id


class EventNotExpectedError(PipelineError):
    """Raised by ``send_event`` when no step of the run is waiting for that event."""


class StepTimeout(BaseException):
    """Raised inside a step when its ``timeout`` passes. It derives from BaseException so
    that ``except Exception`` in step code does not swallow it."""


class UnsafeJobError(PipelineError):
    """Raised in a worker when a job asks for any function other than the engine's own."""


class InvalidJobError(PipelineError, TypeError):
    """Raised in a worker when an engine job's arguments are not what the engine sends
    (a planted or corrupted job)."""


class StepConflict(PipelineError):
    """Internal: a concurrent step took a key this attempt staged; the attempt is re-run."""
