"""Typed access to the ``PIPELINES_*`` settings, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class PipelineSettings:
    queue: str
    retries: int
    retry_backoff: float
    retry_backoff_max: float
    retry_jitter: bool
    step_timeout: int
    max_expand: int
    max_value_bytes: int
    max_value_depth: int
    max_conflict_reruns: int


DEFAULTS = {
    # The django-rq queue steps go to unless the step class names its own.
    "PIPELINES_QUEUE": "pipelines",
    # Retries after the first attempt, unless a step sets ``retries``.
    "PIPELINES_RETRIES": 3,
    # Delay before retry n is backoff * 2**(n-1) seconds, capped, with jitter.
    "PIPELINES_RETRY_BACKOFF": 2.0,
    "PIPELINES_RETRY_BACKOFF_MAX": 300.0,
    "PIPELINES_RETRY_JITTER": True,
    # Seconds an attempt may run before RQ stops it.
    "PIPELINES_STEP_TIMEOUT": 600,
    # An expand over more elements than this halts the run instead of flooding the queue.
    "PIPELINES_MAX_EXPAND": 10_000,
    # Limits on every stored JSON value (context values, inputs, outputs).
    "PIPELINES_MAX_VALUE_BYTES": 1_048_576,
    "PIPELINES_MAX_VALUE_DEPTH": 64,
    # How often one attempt may be re-run because a concurrent step took a key it staged.
    "PIPELINES_MAX_CONFLICT_RERUNS": 20,
}


def get_settings() -> PipelineSettings:
    def value(name: str) -> object:
        return getattr(settings, name, DEFAULTS[name])

    return PipelineSettings(
        queue=str(value("PIPELINES_QUEUE")),
        retries=int(value("PIPELINES_RETRIES")),  # type: ignore[call-overload]
        retry_backoff=float(value("PIPELINES_RETRY_BACKOFF")),  # type: ignore[arg-type]
        retry_backoff_max=float(value("PIPELINES_RETRY_BACKOFF_MAX")),  # type: ignore[arg-type]
        retry_jitter=bool(value("PIPELINES_RETRY_JITTER")),
        step_timeout=int(value("PIPELINES_STEP_TIMEOUT")),  # type: ignore[call-overload]
        max_expand=int(value("PIPELINES_MAX_EXPAND")),  # type: ignore[call-overload]
        max_value_bytes=int(value("PIPELINES_MAX_VALUE_BYTES")),  # type: ignore[call-overload]
        max_value_depth=int(value("PIPELINES_MAX_VALUE_DEPTH")),  # type: ignore[call-overload]
        max_conflict_reruns=int(value("PIPELINES_MAX_CONFLICT_RERUNS")),  # type: ignore[call-overload]
    )
