"""Guarded status changes of runs and step executions, through the ORM.

Each change is a conditional UPDATE on the expected current status (and, for a step, its
attempt), so two processes that race to move the same row cannot both succeed. The
allowed changes come from :mod:`pipelines.lifecycle`. Timestamps are the database's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.engine import clock
from pipelines.exceptions import InvalidTransitionError
from pipelines.lifecycle import (
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepStatus,
    run_may_move,
    step_may_move,
)
from pipelines.models import PipelineRun, StepExecution


def run_transition(run: PipelineRun, to: RunStatus, **fields: Any) -> None:
    """Move ``run`` to ``to``; raise InvalidTransitionError if its status does not allow it
    or another process changed it first. A run's ``started_at`` is its first start: a
    resumed run keeps it, so its duration stays true."""
    current = run.status
    if not run_may_move(current, to):
        raise InvalidTransitionError(f"run {run.pk} is {current}; it cannot become {to}")
    if to == RunStatus.RUNNING and run.started_at is None:
        fields.setdefault("started_at", clock.now())
    if to in TERMINAL_RUN_STATUSES:
        fields.setdefault("finished_at", clock.now())
    elif current in TERMINAL_RUN_STATUSES:
        fields.setdefault("finished_at", None)  # resumed
    updated = PipelineRun.objects.filter(pk=run.pk, status=current).update(status=to, **fields)
    if not updated:
        raise InvalidTransitionError(f"run {run.pk} changed status concurrently (was {current})")
    run.status = to
    set_written(run, fields)


def set_written(row: Any, fields: dict[str, Any]) -> None:
    """Mirror an UPDATE on the instance. A value the database computed (its clock) is
    left unloaded, so reading it fetches what was stored."""
    for name, value in fields.items():
        if hasattr(value, "resolve_expression"):
            row.__dict__.pop(name, None)
        else:
            setattr(row, name, value)


def step_transition(
    execution_id: int,
    *,
    at_attempt: int,
    current: Iterable[str],
    to: StepStatus,
    where: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move an execution to ``to`` if it is still at ``at_attempt`` in one of ``current``.

    Returns False when the fence does not hold (a duplicate or stale delivery, or a late
    result from an attempt that was superseded): the caller must then change nothing.
    ``where`` adds conditions to the fence.
    """
    current = list(current)
    for status in current:
        if not step_may_move(status, to):
            raise InvalidTransitionError(f"a step execution cannot go from {status} to {to}")
    return bool(
        StepExecution.objects.filter(pk=execution_id, attempt=at_attempt, status__in=current)
        .filter(**(where or {}))
        .update(status=to, **fields)
    )


def steps_transition(
    queryset: Any, *, current: Iterable[str], to: StepStatus, **fields: Any
) -> int:
    """Move every execution of ``queryset`` that is in one of ``current`` to ``to``
    (e.g. cancelling a run's unstarted steps). Returns how many moved."""
    current = list(current)
    for status in current:
        if not step_may_move(status, to):
            raise InvalidTransitionError(f"a step execution cannot go from {status} to {to}")
    return int(queryset.filter(status__in=current).update(status=to, **fields))
