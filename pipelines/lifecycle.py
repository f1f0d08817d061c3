"""Statuses of runs, step executions and attempts, and the changes each may make.

Defined once: the models take their choices from here, both stores check their
transitions against these tables, and the SQL statements take their status literals from
here (see :mod:`pipelines.engine.store.sql`, which refuses a name that is not a status).
"""

from __future__ import annotations

from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # a step is paused until an event arrives
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(models.TextChoices):
    ENQUEUED = "enqueued"
    RUNNING = "running"
    RETRYING = "retrying"  # failed, waiting for its backoff before the next attempt
    WAITING = "waiting"  # the body returned WaitForEvent; send_event completes it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"  # its worker died: the heartbeat stopped


class StepKind(models.TextChoices):
    STEP = "step"
    HALT = "halt", "halt handler"
    COMPENSATION = "compensation"


ACTIVE_RUN_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING})
TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
CLAIMABLE_STEP_STATUSES = frozenset({StepStatus.ENQUEUED, StepStatus.RETRYING})
# A step in one of these has not started its current attempt: cancelling a run stops it.
UNSTARTED_STEP_STATUSES = frozenset({*CLAIMABLE_STEP_STATUSES, StepStatus.WAITING})

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.WAITING, *TERMINAL_RUN_STATUSES}),
    RunStatus.RUNNING: frozenset({RunStatus.WAITING, *TERMINAL_RUN_STATUSES}),
    RunStatus.WAITING: frozenset({RunStatus.RUNNING, *TERMINAL_RUN_STATUSES}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),  # resume from the failed step
    RunStatus.CANCELLED: frozenset(),
}

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    StepStatus.ENQUEUED: frozenset({StepStatus.RUNNING, StepStatus.CANCELLED}),
    StepStatus.RETRYING: frozenset({StepStatus.RUNNING, StepStatus.CANCELLED}),
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.RETRYING,
            StepStatus.WAITING,
            StepStatus.CANCELLED,
            StepStatus.ENQUEUED,  # reclaimed after its worker died, or handed back
        }
    ),
    StepStatus.WAITING: frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED}),
    StepStatus.SUCCEEDED: frozenset(),
    StepStatus.FAILED: frozenset({StepStatus.ENQUEUED}),  # resume
    StepStatus.CANCELLED: frozenset({StepStatus.ENQUEUED}),  # resume
}


def run_may_move(current: str, to: str) -> bool:
    return to in RUN_TRANSITIONS[current]


def step_may_move(current: str, to: str) -> bool:
    return to in STEP_TRANSITIONS[current]


def run_state(status: str) -> str:
    """A run's status as English after "run 7": "is running", "has succeeded", "was
    cancelled"; every message that names a run's status says it this way."""
    if status in ACTIVE_RUN_STATUSES:
        return f"is {status}"
    if status == RunStatus.CANCELLED:
        return "was cancelled"
    return f"has {status}"
