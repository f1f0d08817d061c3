"""The only places where run and step-execution statuses change.

Each change is a conditional UPDATE on the expected current status, so two processes that
race to move the same row cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.engine import clock
from pipelines.exceptions import InvalidTransitionError
from pipelines.models import PipelineRun, RunStatus, StepExecution, StepStatus

_ENDINGS = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
RUN_TRANSITIONS: dict[str, set[str]] = {
    RunStatus.PENDING: {RunStatus.RUNNING, RunStatus.WAITING, *_ENDINGS},
    RunStatus.RUNNING: {RunStatus.WAITING, *_ENDINGS},
    RunStatus.WAITING: {RunStatus.RUNNING, *_ENDINGS},
    RunStatus.SUCCEEDED: set(),
    RunStatus.FAILED: {RunStatus.RUNNING},  # resume from the failed step
    RunStatus.CANCELLED: set(),
}

STEP_TRANSITIONS: dict[str, set[str]] = {
    StepStatus.ENQUEUED: {StepStatus.RUNNING, StepStatus.CANCELLED},
    StepStatus.RETRYING: {StepStatus.RUNNING, StepStatus.CANCELLED},
    StepStatus.RUNNING: {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.RETRYING,
        StepStatus.WAITING,
        StepStatus.CANCELLED,
        StepStatus.ENQUEUED,  # reclaimed after its worker died
    },
    StepStatus.WAITING: {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED},
    StepStatus.SUCCEEDED: set(),
    StepStatus.FAILED: {StepStatus.ENQUEUED},  # resume
    StepStatus.CANCELLED: {StepStatus.ENQUEUED},  # resume
}

TERMINAL_RUN = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}


def run_transition(run: PipelineRun, to: RunStatus, **fields: Any) -> None:
    """Move ``run`` to ``to``; raise InvalidTransitionError if its status does not allow it
    or another process changed it first."""
    current = run.status
    if to not in RUN_TRANSITIONS[current]:
        raise InvalidTransitionError(f"run {run.pk} is {current}; it cannot become {to}")
    now = clock.now()  # the sweeper's cancel grace counts from finished_at
    if to == RunStatus.RUNNING:
        fields.setdefault("started_at", now)
    if to in TERMINAL_RUN:
        fields.setdefault("finished_at", now)
    elif current in TERMINAL_RUN:
        fields.setdefault("finished_at", None)  # resumed
    updated = PipelineRun.objects.filter(pk=run.pk, status=current).update(status=to, **fields)
    if not updated:
        raise InvalidTransitionError(f"run {run.pk} changed status concurrently (was {current})")
    run.status = to
    for name, value in fields.items():
        setattr(run, name, value)
    stamped = [name for name, value in fields.items() if value is now]
    if stamped:
        run.refresh_from_db(fields=stamped)


def step_transition(
    execution_id: int,
    *,
    at_attempt: int,
    current: Iterable[StepStatus],
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
        if to not in STEP_TRANSITIONS[status]:
            raise InvalidTransitionError(f"a step execution cannot go from {status} to {to}")
    return bool(
        StepExecution.objects.filter(pk=execution_id, attempt=at_attempt, status__in=current)
        .filter(**(where or {}))
        .update(status=to, **fields)
    )
