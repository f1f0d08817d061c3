"""PostgreSQL: the commit of a step that leads to one place, in one statement.

Most steps are links of a chain (or a divert, or the last step of a run). Their commit
was a transaction of six round trips: BEGIN, lock the run, fence-update the step, upsert
its attempt row, insert the successor, COMMIT. Here the same work is one statement whose
parts run in this order:

1. ``run`` locks the run row (FOR NO KEY UPDATE, the run's mutex, as in
   :func:`pipelines.engine.complete.lock_run`), returning its current status;
2. ``step`` moves the step to ``succeeded`` only if it is still running this attempt
   (the fence) and the run is still active: it reads ``run``, so the lock is taken
   first, and both conditions are checked against the latest committed rows;
3. the attempt's row, the successor and (for the last step) the run's success follow
   only if ``step`` changed a row.

When the run is no longer active nothing is written, and the caller falls back to the
general transaction in :mod:`pipelines.engine.complete`, which compensates a step that
finished after its run failed. A step that staged context writes runs this statement
and the context merge in one transaction (still two statements fewer).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pipelines import context_sql
from pipelines.dsl import Graph
from pipelines.engine.advance import Single, delivery, same_frame
from pipelines.engine.continuation import Keep
from pipelines.engine.enqueue import enqueue_on_commit
from pipelines.exceptions import StepConflict
from pipelines.models import ACTIVE_RUN_STATUSES, PipelineRun, StepExecution

logger = logging.getLogger("pipelines.runner")
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_RUN_STATUSES)


@cache
def _columns() -> list[Any]:
    return [f for f in StepExecution._meta.concrete_fields if not f.primary_key]


@cache
def _sql() -> str:
    columns = ", ".join(f.column for f in _columns())
    values = ", ".join(f"%(new_{f.column})s" for f in _columns())
    # Only column names from the model and constant statuses are formatted in; every
    # value is a parameter.
    return f"""
WITH run AS (
    SELECT status FROM pipelines_pipelinerun WHERE id = %(run)s FOR NO KEY UPDATE
), step AS (
    UPDATE pipelines_stepexecution
    SET status = 'succeeded', finished_at = %(now)s, error = '', output = %(output)s,
        route = %(route)s
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
      AND EXISTS (SELECT 1 FROM run WHERE status IN ({_ACTIVE}))
    RETURNING id, worker, started_at
), attempt_row AS (
    INSERT INTO pipelines_stepattempt (execution_id, number, status, worker, started_at,
                                       finished_at, error, traceback, conflict_reruns)
    SELECT id, %(attempt)s, 'succeeded', worker, COALESCE(started_at, %(now)s), %(now)s,
           '', '', %(reruns)s
    FROM step
    ON CONFLICT (execution_id, number) DO UPDATE SET
        status = EXCLUDED.status, worker = EXCLUDED.worker, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = '', traceback = '',
        conflict_reruns = EXCLUDED.conflict_reruns
), successor AS (
    INSERT INTO pipelines_stepexecution ({columns})
    SELECT {values} FROM step WHERE %(has_successor)s
    RETURNING id
), finished AS (
    UPDATE pipelines_pipelinerun
    SET status = 'succeeded', output = %(run_output)s, finished_at = %(now)s
    WHERE id = %(run)s AND %(finishes)s AND EXISTS (SELECT 1 FROM step)
)
SELECT (SELECT status FROM run), (SELECT count(*) FROM step), (SELECT id FROM successor)
"""  # noqa: S608


def _prep(model: type[Any], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def succeed_single(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    outcome: Any,
    reruns: int,
    single: Single,
    keep: Keep | None,
) -> str | None:
    """Commit a success whose successor is ``single``. Returns "succeeded" or "stale", and
    sets ``outcome.next_execution`` to a successor claimed for ``keep``; None when the run
    is no longer active (nothing was written: the caller takes the general path)."""
    now = timezone.now()
    run: PipelineRun = execution.run
    successor = None
    if single.node is not None:
        successor = same_frame(run, graph, execution, single.node, outcome.output)
        if keep is not None and keep.takes(successor, graph):
            keep.claim(successor)
        else:
            keep = None
    params: dict[str, Any] = {
        "run": execution.run_id,
        "id": execution.pk,
        "attempt": attempt,
        "now": now,
        "output": _prep(StepExecution, "output", outcome.output),
        "route": single.own_fields.get("route", ""),
        "reruns": reruns,
        "has_successor": successor is not None,
        "finishes": successor is None,
        "run_output": _prep(PipelineRun, "output", outcome.output),
    }
    for field in _columns():
        value = field.pre_save(successor, add=True) if successor is not None else None
        params[f"new_{field.column}"] = (
            field.get_db_prep_save(value, connection) if successor is not None else None
        )
    # Without staged writes the statement is its own transaction (autocommit).
    with transaction.atomic() if outcome.context.staged else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_sql(), params)
            run_status, changed, successor_id = cursor.fetchone()
        if not changed:
            if run_status not in ACTIVE_RUN_STATUSES:
                return None
            logger.warning(
                "rejected stale result of execution %s attempt %s", execution.pk, attempt
            )
            return "stale"
        if outcome.context.staged and not context_sql.merge_writes(
            run_id=execution.run_id,
            writes=outcome.context.staged,
            now=now,
            execution_id=execution.pk,
            step=execution.node,
            attempt=attempt,
        ):
            raise StepConflict(", ".join(outcome.context.staged))  # rolls it all back
        if successor is not None:
            successor.pk = successor_id
            if keep is None:
                enqueue_on_commit([delivery(successor, graph)])
    if successor is not None and keep is not None:
        outcome.next_execution = successor
    return "succeeded"
