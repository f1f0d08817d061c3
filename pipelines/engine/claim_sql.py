"""PostgreSQL: claim a delivered execution in one statement.

The claim was two autocommitted statements: the conditional UPDATE that decides who runs
the attempt, then a SELECT of the execution and its run. Here the UPDATE returns the
execution's row joined to its run. The joined run is as of the statement's start, not
locked: the caller only uses it to start a pending run (a guarded transition of its own,
which is not folded in here because it would lock the step before the run, the reverse
of every other writer's order) and to notice a run that has already ended.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from pipelines.models import CLAIMABLE_STEP_STATUSES, PipelineRun, StepExecution

_CLAIMABLE = ", ".join(f"'{status}'" for status in CLAIMABLE_STEP_STATUSES)


def _fields(model: type[Model]) -> list[Any]:
    return list(model._meta.concrete_fields)


@cache
def _sql() -> str:
    step_cols = ", ".join(f"s.{f.column}" for f in _fields(StepExecution))
    run_cols = ", ".join(f"r.{f.column}" for f in _fields(PipelineRun))
    returning = ", ".join(f.column for f in _fields(StepExecution))
    # Only model column names and constant statuses are formatted in; values are
    # parameters.
    return f"""
WITH claimed AS (
    UPDATE pipelines_stepexecution
    SET status = 'running', started_at = %(now)s, heartbeat_at = %(now)s, finished_at = NULL,
        retry_at = NULL, worker = %(worker)s, rq_job = %(job)s
    WHERE id = %(id)s AND attempt = %(attempt)s AND status IN ({_CLAIMABLE})
    RETURNING {returning}
)
SELECT {step_cols}, {run_cols}
FROM claimed s JOIN pipelines_pipelinerun r ON r.id = s.run_id
"""  # noqa: S608


def _instance(model: type[Model], values: list[Any]) -> Any:
    """A model instance from raw column values, converted as the ORM would."""
    fields = _fields(model)
    converted = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def claim(
    execution_id: int, attempt: int, worker: str, job_id: str, now: datetime
) -> StepExecution | None:
    """Claim the attempt; return the execution with its run, or None if another delivery
    has it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(),
            {
                "id": execution_id,
                "attempt": attempt,
                "now": now,
                "worker": worker[:200],
                "job": job_id[:200],
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    n_step = len(_fields(StepExecution))
    execution: StepExecution = _instance(StepExecution, list(row[:n_step]))
    run: PipelineRun = _instance(PipelineRun, list(row[n_step:]))
    execution.run = run
    return execution
