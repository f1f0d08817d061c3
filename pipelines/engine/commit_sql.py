"""PostgreSQL: the commit of a step's success in one statement.

The general commit (:mod:`pipelines.engine.complete`) is a transaction of six to eight
round trips: BEGIN, lock the run, fence-update the step, upsert its attempt row, then
create what follows, COMMIT. For the two most frequent shapes the same work is one
statement whose parts run in this order:

1. ``run`` locks the run row (FOR NO KEY UPDATE, the run's mutex, as in
   :func:`pipelines.engine.complete.lock_run`), returning its current status;
2. ``step`` moves the step to ``succeeded`` only if it is still running this attempt
   (the fence) and the run is still active: it reads ``run``, so the lock is taken
   first, and both conditions are checked against the latest committed rows;
3. the rest follows only if ``step`` changed a row: the attempt's row, and

   * for a step that leads to one place (chain, divert, a run's last step): the
     successor, or the run's success;
   * for the last step of a divide/expand branch: the increment of its join barrier,
     which returns the count. The arrival that completes it starts the join in the same
     transaction (:func:`pipelines.engine.advance.fire_join`).

When the run is no longer active nothing is written, and the caller falls back to the
general path, which compensates a step that finished after its run failed. Staged
context writes are merged by a second statement in the same transaction.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pipelines.dsl import End, Graph
from pipelines.engine.advance import (
    Halt,
    Single,
    delivery,
    fire_join,
    same_frame,
    single_successor,
)
from pipelines.engine.complete import apply_staged, create_and_enqueue, halt_run
from pipelines.engine.continuation import Budget
from pipelines.engine.enqueue import enqueue_on_commit
from pipelines.models import ACTIVE_RUN_STATUSES, JoinBarrier, PipelineRun, StepExecution

logger = logging.getLogger("pipelines.runner")
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_RUN_STATUSES)
# Only model column names and constant statuses are formatted into these statements;
# every value is a parameter.
_STEP = f"""
WITH run AS (
    SELECT status FROM pipelines_pipelinerun WHERE id = %(run)s::bigint FOR NO KEY UPDATE
), step AS (
    UPDATE pipelines_stepexecution
    SET status = 'succeeded', finished_at = %(now)s::timestamptz, error = '',
        output = %(output)s::jsonb, route = %(route)s::text, reported = %(reported)s::boolean
    WHERE id = %(id)s::bigint AND attempt = %(attempt)s::integer AND status = 'running'
      AND EXISTS (SELECT 1 FROM run WHERE status IN ({_ACTIVE}))
    RETURNING id, worker, started_at, barrier_id
), attempt_row AS (
    -- As complete.record_attempt writes it: an upsert of the attempt that just ended.
    INSERT INTO pipelines_stepattempt (execution_id, number, status, worker, started_at,
                                       finished_at, error, traceback, conflict_reruns)
    SELECT id, %(attempt)s::integer, 'succeeded', worker,
           COALESCE(started_at, %(now)s::timestamptz), %(now)s::timestamptz, '', '',
           %(reruns)s::integer
    FROM step
    ON CONFLICT (execution_id, number) DO UPDATE SET
        status = EXCLUDED.status, worker = EXCLUDED.worker, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = '', traceback = '',
        conflict_reruns = EXCLUDED.conflict_reruns
)"""  # noqa: S608
_ARRIVAL = f"""{_STEP}, bar AS (
    UPDATE pipelines_joinbarrier SET arrived = arrived + 1
    WHERE id = (SELECT barrier_id FROM step)
    RETURNING id, run_id, node, expected, arrived, parent_id, parent_branch, fired_at
)
SELECT (SELECT status FROM run), (SELECT count(*) FROM step), bar.*
FROM (SELECT 1) AS one LEFT JOIN bar ON TRUE
"""  # noqa: S608


@cache
def _columns() -> list[Any]:
    return [f for f in StepExecution._meta.concrete_fields if not f.primary_key]


def _value(field: Any) -> str:
    # Typed: with server-side binding (the psycopg OPTIONS server_side_binding) PostgreSQL
    # must know each parameter's type. Without the length: a cast to varchar(n) would cut
    # a long value instead of failing like the column's own check, as Django's inserts do.
    param = f"%(new_{field.column})s::{field.db_type(connection).split('(')[0]}"
    if field.column in ("started_at", "heartbeat_at"):
        # A successor claimed for this worker starts its heartbeat when the commit has the
        # lock, not when it began waiting for it: a long wait must not look like a dead
        # worker to the sweeper.
        return f"CASE WHEN {param} IS NULL THEN NULL ELSE clock_timestamp() END"
    return param


@cache
def _single_sql() -> str:
    columns = ", ".join(f.column for f in _columns())
    values = ", ".join(_value(f) for f in _columns())
    return f"""{_STEP}, successor AS (
    INSERT INTO pipelines_stepexecution ({columns})
    SELECT {values} FROM step WHERE %(has_successor)s::boolean
    RETURNING id
), finished AS (
    UPDATE pipelines_pipelinerun
    SET status = 'succeeded', output = %(run_output)s::jsonb, finished_at = %(now)s::timestamptz
    WHERE id = %(run)s::bigint AND %(finishes)s::boolean AND EXISTS (SELECT 1 FROM step)
)
SELECT (SELECT status FROM run), (SELECT count(*) FROM step), (SELECT id FROM successor)
"""  # noqa: S608


def _prep(model: type[Any], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _params(
    execution: StepExecution, attempt: int, outcome: Any, reruns: int, **extra: Any
) -> dict[str, Any]:
    return {
        "run": execution.run_id,
        "id": execution.pk,
        "attempt": attempt,
        "now": timezone.now(),
        "output": _prep(StepExecution, "output", outcome.output),
        "reruns": reruns,
        "route": "",
        "reported": False,
        **extra,
    }


def _unchanged(execution: StepExecution, attempt: int, run_status: str | None) -> str | None:
    if run_status not in ACTIVE_RUN_STATUSES:
        return None  # the general path decides what a late success means
    logger.warning("rejected stale result of execution %s attempt %s", execution.pk, attempt)
    return "stale"


def succeed(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    outcome: Any,
    reruns: int,
    keep: Budget | None,
) -> str | None:
    """Commit a step's success in one statement if its shape has one (see the module
    docstring). Returns "succeeded" or "stale"; None when it has no such statement or
    the run is no longer active (nothing was written: the caller takes the general
    path)."""
    single = single_successor(graph, execution, outcome.output, outcome.route)
    if single is not None:
        return succeed_single(execution, attempt, graph, outcome, reruns, single, keep)
    if isinstance(graph.node(execution.node).transition, End):
        return succeed_arrival(execution, attempt, graph, outcome, reruns, keep)
    return None


def succeed_single(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    outcome: Any,
    reruns: int,
    single: Single,
    keep: Budget | None,
) -> str | None:
    """Commit a success whose successor is ``single``. Returns "succeeded" or "stale", and
    sets ``outcome.next_execution`` to a successor claimed for ``keep``; None when the run
    is no longer active (nothing was written: the caller takes the general path)."""
    run: PipelineRun = execution.run
    successor = None
    if single.node is not None:
        successor = same_frame(run, graph, execution, single.node, outcome.output)
        if keep is not None and keep.takes(successor, graph):
            keep.claim(successor)
        else:
            keep = None
    params = _params(
        execution,
        attempt,
        outcome,
        reruns,
        route=single.own_fields.get("route", ""),
        has_successor=successor is not None,
        finishes=successor is None,
        run_output=None if successor else _prep(PipelineRun, "output", outcome.output),
    )
    for field in _columns():
        params[f"new_{field.column}"] = (
            None
            if successor is None
            else field.get_db_prep_save(field.pre_save(successor, add=True), connection)
        )
    # Without staged writes the statement is its own transaction (autocommit).
    with transaction.atomic() if outcome.context.staged else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_single_sql(), params)
            run_status, changed, successor_id = cursor.fetchone()
        if not changed:
            return _unchanged(execution, attempt, run_status)
        apply_staged(execution, attempt, outcome.context, params["now"])
        if successor is not None:
            successor.pk = successor_id
            if keep is None:
                enqueue_on_commit([delivery(successor, graph)])
    if successor is not None and keep is not None:
        outcome.next_execution = successor
    return "succeeded"


def succeed_arrival(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    outcome: Any,
    reruns: int,
    keep: Budget | None,
) -> str | None:
    """Commit the success of a branch's last step and count it in at its join; the
    arrival that completes the barrier creates the join step. Returns as
    :func:`succeed_single` does."""
    params = _params(execution, attempt, outcome, reruns, reported=True)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_ARRIVAL, params)
            run_status, changed, *bar = cursor.fetchone()
        if not changed:
            return _unchanged(execution, attempt, run_status)
        apply_staged(execution, attempt, outcome.context, params["now"])
        barrier = JoinBarrier(
            id=bar[0],
            run_id=bar[1],
            node=bar[2],
            expected=bar[3],
            arrived=bar[4],
            parent_id=bar[5],
            parent_branch=bar[6],
            fired_at=bar[7],
        )
        if barrier.arrived < barrier.expected or barrier.fired_at is not None:
            return "succeeded"
        run = execution.run
        run.status = run_status  # as the lock found it
        execution.output = outcome.output
        try:
            created = fire_join(run, graph, execution, barrier)
        except Halt as halt:
            halt_run(run, graph, str(halt), failed_node=execution.node)
            return "succeeded"
        outcome.next_execution = create_and_enqueue(created, graph, keep)
    return "succeeded"
