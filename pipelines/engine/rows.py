"""Building and writing the engine's rows through the ORM: the run's lock, new step
executions, barriers and attempt rows. Both stores use these, so a row looks the same
whichever store wrote it. Timestamps are the database's clock (``clock.now()``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection

from pipelines.dsl import Graph
from pipelines.engine import clock
from pipelines.lifecycle import StepKind, StepStatus
from pipelines.models import JoinBarrier, PipelineRun, StepAttempt, StepExecution

# What an attempt's row holds besides its execution, number and status.
ATTEMPT_FIELDS = ("worker", "started_at", "finished_at", "error", "traceback", "conflict_reruns")


def lock_run(run_id: int) -> PipelineRun:
    """Take the run's mutex (its row lock) and return the run as it is now, in one query.

    Every step completion, run status change and (outside PostgreSQL) context write takes
    it first, so they serialise per run: write-once checks, joins and halts see each
    other's commits. FOR NO KEY UPDATE where the database has it: it excludes other
    holders but not the foreign-key checks of rows that reference the run (a context
    write's history row), which FOR UPDATE would block into a deadlock."""
    no_key = connection.features.has_select_for_no_key_update
    return PipelineRun.objects.select_for_update(no_key=no_key).get(pk=run_id)


def new_execution(
    run: PipelineRun,
    graph: Graph,
    node_id: str,
    payload: Any,
    *,
    barrier_id: int | None = None,
    branch_index: int | None = None,
    kind: StepKind = StepKind.STEP,
) -> StepExecution:
    step = graph.node(node_id).step
    return StepExecution(
        run=run,
        node=node_id,
        step=step.__name__,
        kind=kind,
        status=StepStatus.ENQUEUED,
        queue=step.queue_name(),
        payload=payload,
        barrier_id=barrier_id,
        branch_index=branch_index,
        created_at=clock.now(),
        enqueued_at=clock.now(),
    )


def same_frame(
    run: PipelineRun, graph: Graph, execution: StepExecution, node_id: str, payload: Any
) -> StepExecution:
    """A new execution in the same divide/expand branch as ``execution``."""
    return new_execution(
        run,
        graph,
        node_id,
        payload,
        barrier_id=execution.barrier_id,
        branch_index=execution.branch_index,
    )


def claim_fields(worker: str, job_id: str) -> dict[str, Any]:
    """What a claim writes on an execution besides its status: by the claim's UPDATE, or
    on a successor that the commit creating it claims for its worker."""
    return {
        "started_at": clock.now(),
        "heartbeat_at": clock.now(),
        "worker": worker[:200],
        "rq_job": job_id[:200],
    }


# A statement takes at most 65,535 bound parameters (PostgreSQL's protocol, with
# server-side binding): an expand's 10,000 items of 27 columns need several statements.
MAX_PARAMETERS = 65_535


def insert(executions: list[StepExecution]) -> None:
    """Insert new executions in as few statements as the parameter limit allows; the
    timestamps the database computed are read back on first use."""
    columns = len(StepExecution._meta.concrete_fields)
    StepExecution.objects.bulk_create(executions, batch_size=MAX_PARAMETERS // columns)
    forget_computed(executions)


def forget_computed(rows: Iterable[Any]) -> None:
    for row in rows:
        for name, value in list(row.__dict__.items()):
            if hasattr(value, "resolve_expression"):
                del row.__dict__[name]


def open_barrier(
    run: PipelineRun, execution: StepExecution, join: str, expected: int
) -> JoinBarrier:
    """A barrier for ``join``, in the frame of the step that divides."""
    return JoinBarrier.objects.create(
        run=run,
        node=join,
        expected=expected,
        parent_id=execution.barrier_id,
        parent_branch=execution.branch_index,
    )


def record_attempt(execution: StepExecution, number: int, status: str, **fields: Any) -> None:
    """Write the row of an attempt that just ended, in the transaction of its outcome. A
    running attempt is the execution row itself; its row is written when it ends (an
    upsert: a crash-recovery pass and a late result may meet on the same attempt)."""
    values = {
        "worker": execution.worker,
        "started_at": execution.started_at or clock.now(),
        "finished_at": clock.now(),
        "error": "",
        "traceback": "",
        "conflict_reruns": 0,
        **fields,
    }
    # MySQL/MariaDB upsert on any unique key and take no conflict target.
    target = connection.features.supports_update_conflicts_with_target
    StepAttempt.objects.bulk_create(
        [StepAttempt(execution=execution, number=number, status=status, **values)],
        update_conflicts=True,
        unique_fields=["execution", "number"] if target else None,
        update_fields=["status", *ATTEMPT_FIELDS],
    )
