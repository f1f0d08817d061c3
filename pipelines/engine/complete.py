"""Committing an attempt's outcome: success, failure (retry or halt), and what follows.

Every commit here takes the run's lock first (the context row), and is fenced by the
attempt: a late result from an attempt that was superseded changes nothing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pipelines import context_sql
from pipelines.context import StepContext
from pipelines.dsl import Graph, WaitForEvent
from pipelines.engine.advance import (
    Halt,
    advance,
    deliveries,
    delivery,
    new_execution,
)
from pipelines.engine.continuation import Budget
from pipelines.engine.enqueue import Delivery, enqueue_on_commit
from pipelines.engine.transitions import run_transition, step_transition
from pipelines.exceptions import StepConflict
from pipelines.models import (
    ACTIVE_RUN_STATUSES,
    AttemptStatus,
    ContextWrite,
    PipelineRun,
    RunContext,
    RunStatus,
    StepAttempt,
    StepExecution,
    StepKind,
    StepStatus,
)
from pipelines.step import RetryPolicy

logger = logging.getLogger("pipelines.runner")


@dataclass
class Outcome:
    """What a body produced: its output, its staged context writes, and any directive."""

    output: Any
    context: StepContext
    route: str | None = None
    wait: WaitForEvent | None = None
    # Set by succeed(): the successor claimed for this worker to run next, if any.
    next_execution: StepExecution | None = None


@dataclass
class Failure:
    error: str
    traceback: str
    retryable: bool = True
    timed_out: bool = False
    attempt_status: str = field(default=AttemptStatus.FAILED)

    def __post_init__(self) -> None:
        if self.timed_out:
            self.attempt_status = AttemptStatus.TIMED_OUT


def record_attempt(execution: StepExecution, number: int, status: str, **fields: Any) -> None:
    """Write the row of an attempt that just ended. Attempts are recorded when they end
    (in the same transaction as their outcome), not when they start: a running attempt is
    the execution row itself, and this keeps a round trip off every step's claim."""
    row = StepAttempt(
        execution=execution,
        number=number,
        status=status,
        worker=execution.worker,
        started_at=execution.started_at or timezone.now(),
        finished_at=fields.pop("finished_at", None) or timezone.now(),
        **fields,
    )
    # An upsert: a row for this attempt may exist (written by an earlier release, which
    # recorded attempts when they started); the outcome replaces it. MariaDB cannot name
    # the unique fields; its upsert fires on the one unique key the row can collide on.
    target = connection.features.supports_update_conflicts_with_target
    StepAttempt.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["execution", "number"] if target else None,
        update_fields=[
            "status",
            "worker",
            "started_at",
            "finished_at",
            "error",
            "traceback",
            "conflict_reruns",
        ],
    )


def lock_run(run_id: int) -> PipelineRun:
    """Take the run's mutex (its row lock) and return the run as it is now, in one query.

    Every step completion, context write and run status change takes it first, so they
    serialise per run: write-once checks, joins and halts see each other's commits.
    FOR NO KEY UPDATE: it excludes other holders but not the foreign-key checks of rows
    that reference the run (a context write's history row), which FOR UPDATE would block
    into a deadlock with a concurrent writer. A database without it (MariaDB) takes
    FOR UPDATE."""
    no_key = connection.features.has_select_for_no_key_update
    return PipelineRun.objects.select_for_update(no_key=no_key).get(pk=run_id)


def succeed(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    outcome: Outcome,
    reruns: int,
    keep: Budget | None = None,
) -> str:
    """Commit a body's success and what follows it. With ``keep``, a single successor this
    worker may run next is claimed by the same commit and left in
    ``outcome.next_execution``."""
    waiting = outcome.wait is not None
    if context_sql.server_side() and execution.kind == StepKind.STEP and not waiting:
        # The frequent shapes commit in one statement on PostgreSQL; None means this one
        # has no such statement, or the run is no longer active: the path below decides.
        from pipelines.engine import commit_sql

        result = commit_sql.succeed(execution, attempt, graph, outcome, reruns, keep)
        if result is not None:
            return result
    now = timezone.now()
    with transaction.atomic():
        run = lock_run(execution.run_id)
        fields: dict[str, Any] = {"finished_at": now, "error": ""}
        if waiting:
            assert outcome.wait is not None
            fields = {
                "event_name": outcome.wait.name,
                "event_deadline": (
                    now + timedelta(seconds=outcome.wait.timeout) if outcome.wait.timeout else None
                ),
            }
        else:
            fields["output"] = outcome.output
        if not step_transition(
            execution.pk,
            at_attempt=attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.WAITING if waiting else StepStatus.SUCCEEDED,
            **fields,
        ):
            logger.warning(
                "rejected stale result of execution %s attempt %s", execution.pk, attempt
            )
            return "stale"
        apply_staged(execution, attempt, outcome.context, now)
        record_attempt(
            execution, attempt, AttemptStatus.SUCCEEDED, finished_at=now, conflict_reruns=reruns
        )
        if execution.kind == StepKind.COMPENSATION:
            start_next_compensation(run, graph)
            return "succeeded"
        if execution.kind == StepKind.HALT:
            return "succeeded"
        if run.status not in ACTIVE_RUN_STATUSES:
            # Another branch failed the run, or it was cancelled: start nothing new, but
            # undo this step too if it can be undone.
            if (
                run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
                and not compensate_late(run, graph, execution)
                and not waiting
            ):
                hold(run, execution, outcome.route)
            return "succeeded"
        if waiting:
            if run.status != RunStatus.WAITING:
                run_transition(run, RunStatus.WAITING)
            return "waiting"
        execution.output = outcome.output
        outcome.next_execution = advance_and_enqueue(
            run, graph, execution, outcome.output, outcome.route, keep
        )
    return "succeeded"


def advance_and_enqueue(
    run: PipelineRun,
    graph: Graph,
    execution: StepExecution,
    output: Any,
    route: str | None,
    keep: Budget | None = None,
) -> StepExecution | None:
    """Create what follows a completed execution; halt the run if that is impossible.

    With ``keep``, a single successor that this worker may run next is inserted already
    claimed by it and returned instead of enqueued (see :mod:`.continuation`)."""
    try:
        created, own_fields = advance(run, graph, execution, output, route)
    except Halt as halt:
        halt_run(run, graph, str(halt), failed_node=execution.node)
        return None
    if own_fields:
        StepExecution.objects.filter(pk=execution.pk).update(**own_fields)
    return create_and_enqueue(created, graph, keep)


def create_and_enqueue(
    created: list[StepExecution], graph: Graph, keep: Budget | None
) -> StepExecution | None:
    """Insert new executions and enqueue them when the transaction commits; a single one
    that ``keep`` takes is inserted claimed instead, and returned."""
    kept = None
    if keep is not None and len(created) == 1 and keep.takes(created[0], graph):
        kept = created[0]
        keep.claim(kept)
    StepExecution.objects.bulk_create(created)
    enqueue_on_commit(deliveries([e for e in created if e is not kept], graph))
    return kept


def apply_staged(
    execution: StepExecution,
    attempt: int,
    context: StepContext,
    now: Any,
) -> None:
    """Commit a step's staged writes; the caller holds the run's lock. A step that wrote
    nothing never loads the context document."""
    if not context.staged:
        return
    if context_sql.server_side():
        if not context_sql.merge_writes(
            run_id=execution.run_id,
            writes=context.staged,
            now=now,
            execution_id=execution.pk,
            step=execution.node,
            attempt=attempt,
        ):
            raise StepConflict(", ".join(context.staged))
        return
    data = RunContext.objects.filter(pk=execution.run_id).values_list("data", flat=True).get()
    taken = [k for k, (_, overwrite) in context.staged.items() if not overwrite and k in data]
    if taken:
        raise StepConflict(", ".join(taken))
    writes = []
    for key, (value, overwrite) in context.staged.items():
        data[key] = value
        writes.append(
            ContextWrite(
                run_id=execution.run_id,
                key=key,
                value=value,
                execution=execution,
                step=execution.node,
                attempt=attempt,
                overwrite=overwrite,
                written_at=now,
            )
        )
    RunContext.objects.filter(pk=execution.run_id).update(data=data, updated_at=now)
    ContextWrite.objects.bulk_create(writes)


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff for the retry after ``attempt``, capped, with equal jitter so
    that many steps failing together do not retry in lockstep."""
    delay = min(policy.backoff_max, policy.backoff * (2 ** (attempt - 1)))
    if policy.jitter and delay > 0:
        delay = delay / 2 + random.uniform(0, delay / 2)
    return delay


def fail(execution: StepExecution, attempt: int, failure: Failure, graph: Graph | None) -> str:
    now = timezone.now()
    node = graph.nodes.get(execution.node) if graph else None
    policy = node.step.retry_policy() if node and failure.retryable else None
    with transaction.atomic():
        run = lock_run(execution.run_id)
        retry = (
            policy is not None
            and attempt <= policy.retries
            and (run.status in ACTIVE_RUN_STATUSES or execution.kind != StepKind.STEP)
        )
        delay = retry_delay(policy, attempt) if retry and policy else 0.0
        if retry:
            moved = step_transition(
                execution.pk,
                at_attempt=attempt,
                current=[StepStatus.RUNNING],
                to=StepStatus.RETRYING,
                attempt=attempt + 1,
                error=failure.error,
                retry_at=now + timedelta(seconds=delay),
            )
        else:
            moved = step_transition(
                execution.pk,
                at_attempt=attempt,
                current=[StepStatus.RUNNING],
                to=StepStatus.FAILED,
                error=failure.error,
                finished_at=now,
            )
        if not moved:
            return "stale"
        logger.warning(
            "step %s of run %s failed on attempt %s (%s): %s",
            execution.node,
            execution.run_id,
            attempt,
            f"retrying in {delay:.1f}s" if retry else "no retries left",
            failure.error,
        )
        record_attempt(
            execution,
            attempt,
            failure.attempt_status,
            finished_at=now,
            error=failure.error,
            traceback=failure.traceback,
        )
        if retry:
            assert graph is not None
            execution.attempt = attempt + 1
            base = delivery(execution, graph)
            enqueue_on_commit(
                [Delivery(base.execution_id, base.attempt, base.queue, base.timeout, delay)]
            )
            return "retrying"
        after_final_failure(run, graph, execution, failure.error, attempt)
    return "failed"


def after_final_failure(
    run: PipelineRun, graph: Graph | None, execution: StepExecution, error: str, attempt: int
) -> None:
    """An execution failed for good: halt its run, or carry on with the compensations."""
    if execution.kind == StepKind.COMPENSATION:
        note = f"compensation of {execution.node} failed: {error}"
        PipelineRun.objects.filter(pk=run.pk).update(error=f"{run.error}\n{note}".strip())
        start_next_compensation(run, graph)
        return
    if execution.kind == StepKind.STEP and run.status in ACTIVE_RUN_STATUSES:
        attempts = f"{attempt} attempt{'s' if attempt > 1 else ''}"
        reason = f"step {execution.node} failed after {attempts}: {error}"
        halt_run(run, graph, reason, failed_node=execution.node)


def halt_run(run: PipelineRun, graph: Graph | None, reason: str, *, failed_node: str) -> None:
    """Fail the run, start its halt handler and its compensations, once: the status
    transition is guarded, so a second halt of the same run raises instead."""
    run_transition(run, RunStatus.FAILED, error=reason)
    if graph is None:
        return
    if graph.halt is not None:
        payload = {"run_id": run.pk, "pipeline": run.pipeline, "step": failed_node, "error": reason}
        handler = new_execution(run, graph, graph.halt.id, payload, kind=StepKind.HALT)
        handler.save()
        enqueue_on_commit([delivery(handler, graph)])
    start_next_compensation(run, graph)


def _compensable(graph: Graph, node_id: str) -> bool:
    node = graph.nodes.get(node_id)
    return node is not None and node.step.has_compensation()


def start_next_compensation(run: PipelineRun, graph: Graph | None) -> None:
    """Compensations run one at a time, in reverse completion order: the next one is the
    latest-finished succeeded step that can be undone and has not been yet."""
    if graph is None:
        return
    done = StepExecution.objects.filter(run=run, kind=StepKind.COMPENSATION).values(
        "compensates_id"
    )
    candidates = (
        StepExecution.objects.filter(run=run, kind=StepKind.STEP, status=StepStatus.SUCCEEDED)
        .exclude(pk__in=done)
        .order_by("-finished_at", "-id")
        .only("id", "node", "output", "run_id")
    )
    for candidate in candidates:
        if _compensable(graph, candidate.node):
            _create_compensation(run, graph, candidate)
            return


def compensate_late(run: PipelineRun, graph: Graph, execution: StepExecution) -> bool:
    """A step that finished after its run ended is undone at once (if it can be), next
    to any compensations already under way. Returns whether it will be."""
    if _compensable(graph, execution.node):
        _create_compensation(run, graph, execution)
        return True
    return False


def hold(run: PipelineRun, execution: StepExecution, route: str | None) -> None:
    """Mark a step that succeeded in a failed run (nothing follows it yet) so that
    resuming the run carries on from it: otherwise its branch would never reach its
    join, and the resumed run would never finish. A compensated run cannot resume, so
    its steps are not held."""
    if (
        run.status == RunStatus.FAILED
        and execution.kind == StepKind.STEP
        and not StepExecution.objects.filter(run=run, kind=StepKind.COMPENSATION).exists()
    ):
        StepExecution.objects.filter(pk=execution.pk).update(held=True, route=route or "")


def held_steps(run: PipelineRun) -> Any:
    return StepExecution.objects.filter(
        run=run, kind=StepKind.STEP, status=StepStatus.SUCCEEDED, held=True
    ).select_related("run")


def resume_held(run: PipelineRun, graph: Graph) -> None:
    """Resuming a run: create what follows each held step (see :func:`hold`)."""
    for execution in held_steps(run):
        StepExecution.objects.filter(pk=execution.pk).update(held=False, route="")
        advance_and_enqueue(run, graph, execution, execution.output, execution.route or None)


def _create_compensation(run: PipelineRun, graph: Graph, original: StepExecution) -> None:
    compensation = new_execution(
        run, graph, original.node, original.output, kind=StepKind.COMPENSATION
    )
    compensation.compensates_id = original.pk
    compensation.save()
    enqueue_on_commit([delivery(compensation, graph)])
