"""Typed access to the ``PIPELINES_*`` settings, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


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
    heartbeat_interval: float
    reclaim_after: float
    reenqueue_after: float
    sweep_interval: float
    crash_budget: int
    cancel_grace: float
    eager_steps: int
    eager_seconds: float
    expand_batch: int
    store: str


# The deepest value every supported database stores. MariaDB refuses JSON nested more
# than 31 containers deep; a run's context document holds each value one level down, and
# the check counts an empty list or object at the bottom as a leaf, not a level.
PORTABLE_MAX_VALUE_DEPTH = 29

DEFAULTS = {
    # The django-rq queue steps go to unless the step class names its own.
    "PIPELINES_QUEUE": "pipelines",
    # Retries after the first attempt, unless a step sets ``retries``.
    "PIPELINES_RETRIES": 3,
    # Delay before retry n is backoff * 2**(n-1) seconds, capped, with jitter.
    "PIPELINES_RETRY_BACKOFF": 2.0,
    "PIPELINES_RETRY_BACKOFF_MAX": 300.0,
    "PIPELINES_RETRY_JITTER": True,
    # Seconds a step's body may run before it is stopped with StepTimeout (its RQ job
    # gets 60 more, so that the outcome is recorded).
    "PIPELINES_STEP_TIMEOUT": 600,
    # An expand over more elements than this halts the run instead of flooding the queue.
    "PIPELINES_MAX_EXPAND": 10_000,
    # Limits on every stored JSON value (context values, inputs, outputs).
    "PIPELINES_MAX_VALUE_BYTES": 1_048_576,
    "PIPELINES_MAX_VALUE_DEPTH": PORTABLE_MAX_VALUE_DEPTH,
    # How often one attempt may be re-run because a concurrent step took a key it staged.
    "PIPELINES_MAX_CONFLICT_RERUNS": 20,
    # Recovery. A running step touches its heartbeat this often (seconds) ...
    "PIPELINES_HEARTBEAT_INTERVAL": 5.0,
    # ... and is reclaimed as a new attempt when it has not for this long.
    "PIPELINES_RECLAIM_AFTER": 20.0,
    # An execution enqueued this long ago whose job is not in Redis is enqueued again.
    "PIPELINES_REENQUEUE_AFTER": 20.0,
    # How often each worker's sweeper thread runs a pass (only one holds the lease).
    "PIPELINES_SWEEP_INTERVAL": 5.0,
    # Reclaims allowed per step execution before the run halts (the step keeps killing
    # its worker).
    "PIPELINES_CRASH_BUDGET": 3,
    # Seconds a running step of a cancelled run gets to stop by itself.
    "PIPELINES_CANCEL_GRACE": 10.0,
    # A worker that finishes a step runs its single successor on the same queue itself,
    # up to this many steps in a row and this many seconds, instead of a Redis round trip
    # per step. 1 turns it off.
    "PIPELINES_EAGER_STEPS": 20,
    "PIPELINES_EAGER_SECONDS": 2.0,
    # A big expand's items share RQ jobs of up to this many items, run one after another
    # within the same budgets (every expand keeps at least 64 jobs). 1 turns it off.
    "PIPELINES_EXPAND_BATCH": 10,
    # Where the engine writes: "" picks by database (PostgreSQL's named statements on
    # PostgreSQL, the portable ORM store elsewhere); "orm" forces the portable store.
    "PIPELINES_STORE": "",
    # Where the dashboard is served (scheme and host, e.g. "https://ops.example.com"):
    # commands print absolute run URLs with it, and the bare path without it.
    "PIPELINES_DASHBOARD_URL": "",
}


def _get(name: str) -> object:
    return getattr(settings, name, DEFAULTS[name])


def _int(name: str) -> int:
    return int(_get(name))  # type: ignore[call-overload]


def _float(name: str) -> float:
    return float(_get(name))  # type: ignore[arg-type]


@cache
def get_settings() -> PipelineSettings:
    """The settings, read once per process: this is on every step's path, and Django's
    lazy settings are slow to read. ``override_settings`` (setting_changed) clears it."""
    return PipelineSettings(
        queue=str(_get("PIPELINES_QUEUE")),
        retries=_int("PIPELINES_RETRIES"),
        retry_backoff=_float("PIPELINES_RETRY_BACKOFF"),
        retry_backoff_max=_float("PIPELINES_RETRY_BACKOFF_MAX"),
        retry_jitter=bool(_get("PIPELINES_RETRY_JITTER")),
        step_timeout=_int("PIPELINES_STEP_TIMEOUT"),
        max_expand=_int("PIPELINES_MAX_EXPAND"),
        max_value_bytes=_int("PIPELINES_MAX_VALUE_BYTES"),
        max_value_depth=_int("PIPELINES_MAX_VALUE_DEPTH"),
        max_conflict_reruns=_int("PIPELINES_MAX_CONFLICT_RERUNS"),
        heartbeat_interval=_float("PIPELINES_HEARTBEAT_INTERVAL"),
        reclaim_after=_float("PIPELINES_RECLAIM_AFTER"),
        reenqueue_after=_float("PIPELINES_REENQUEUE_AFTER"),
        sweep_interval=_float("PIPELINES_SWEEP_INTERVAL"),
        crash_budget=_int("PIPELINES_CRASH_BUDGET"),
        cancel_grace=_float("PIPELINES_CANCEL_GRACE"),
        eager_steps=_int("PIPELINES_EAGER_STEPS"),
        eager_seconds=_float("PIPELINES_EAGER_SECONDS"),
        expand_batch=_int("PIPELINES_EXPAND_BATCH"),
        store=str(_get("PIPELINES_STORE")),
    )


def dashboard_url() -> str:
    """``PIPELINES_DASHBOARD_URL`` without a trailing slash (read where URLs are printed,
    not on the engine's path, so it is not cached)."""
    return str(_get("PIPELINES_DASHBOARD_URL") or "").rstrip("/")


@receiver(setting_changed)
def _forget_settings(**kwargs: object) -> None:
    get_settings.cache_clear()
