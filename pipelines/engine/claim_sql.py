"""PostgreSQL: claim a delivered execution in one statement.

The claim was two or three autocommitted statements (each its own WAL flush): the
conditional UPDATE that decides who runs the attempt, a SELECT of the execution and its
run, and for a run's first step the run's pending -> running change. Here they are one,
in the lock order every writer keeps (the run's row before its steps'):

1. ``pending`` locks the run's row only if the run is still pending (a running run is
   not locked: sibling claims of a big fan-out must not queue on the run's mutex);
2. ``claimed`` is the conditional UPDATE; its condition reads ``pending``, so that lock
   is taken first;
3. ``started`` starts the pending run if this claim succeeded.

The joined run row is as of the statement's start; ``claim`` corrects its status when
this statement started the run.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from pipelines.models import CLAIMABLE_STEP_STATUSES, PipelineRun, RunStatus, StepExecution

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
WITH pending AS (
    SELECT id FROM pipelines_pipelinerun
    WHERE id = (SELECT run_id FROM pipelines_stepexecution WHERE id = %(id)s::bigint)
      AND status = 'pending'
    FOR NO KEY UPDATE
), claimed AS (
    UPDATE pipelines_stepexecution
    SET status = 'running', started_at = statement_timestamp(),
        heartbeat_at = statement_timestamp(), finished_at = NULL, retry_at = NULL,
        worker = %(worker)s::text, rq_job = %(job)s::text
    WHERE id = %(id)s::bigint AND attempt = %(attempt)s::integer AND status IN ({_CLAIMABLE})
      AND (SELECT count(*) FROM pending) >= 0
    RETURNING {returning}
), started AS (
    UPDATE pipelines_pipelinerun SET status = 'running', started_at = statement_timestamp()
    WHERE id IN (SELECT id FROM pending) AND EXISTS (SELECT 1 FROM claimed)
    RETURNING id
)
SELECT {step_cols}, {run_cols}, (SELECT count(*) FROM started)
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


def claim(execution_id: int, attempt: int, worker: str, job_id: str) -> StepExecution | None:
    """Claim the attempt; return the execution with its run, or None if another delivery
    has it. Its times are the database's (see :mod:`.clock`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(),
            {
                "id": execution_id,
                "attempt": attempt,
                "worker": worker[:200],
                "job": job_id[:200],
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    n_step = len(_fields(StepExecution))
    execution: StepExecution = _instance(StepExecution, list(row[:n_step]))
    run: PipelineRun = _instance(PipelineRun, list(row[n_step:-1]))
    if row[-1]:  # this claim started the run
        run.status = RunStatus.RUNNING
        run.started_at = execution.started_at
    execution.run = run
    return execution
