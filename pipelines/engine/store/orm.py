"""The portable store: applies the engine's decisions through the ORM, on every database
Django supports here (PostgreSQL, SQLite, MariaDB/MySQL).

Every commit takes the run's lock first and is fenced by the attempt: a late result from
an attempt that was superseded changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from pipelines.dsl import Graph
from pipelines.engine import clock, plan, rows
from pipelines.engine.continuation import Budget
from pipelines.engine.delivery import assign_batches, deliveries, delivery, enqueue_on_commit
from pipelines.engine.halting import (
    after_final_failure,
    compensate_late,
    halt_run,
    start_next_compensation,
)
from pipelines.engine.holding import hold
from pipelines.engine.outcome import NOTHING_KEPT, Committed, Failure, Kept, Outcome, Result
from pipelines.engine.transitions import run_transition, step_transition
from pipelines.exceptions import InvalidTransitionError, StepConflict
from pipelines.lifecycle import (
    ACTIVE_RUN_STATUSES,
    CLAIMABLE_STEP_STATUSES,
    AttemptStatus,
    RunStatus,
    StepKind,
    StepStatus,
    run_state,
)
from pipelines.models import ContextWrite, JoinBarrier, PipelineRun, RunContext, StepExecution
from pipelines.step import RetryPolicy

logger = logging.getLogger("pipelines.runner")
Writes = dict[str, tuple[Any, bool]]  # key -> (value, overwrite)


@dataclass(frozen=True)
class Writer:
    """Who writes to the context: a step's attempt (None: code outside a step)."""

    execution_id: int
    step: str
    attempt: int


class OrmStore:
    """Claims, commits and context writes through the ORM."""

    name = "orm"

    # --- locks and claims -------------------------------------------------------------------

    def lock_run(self, run_id: int) -> PipelineRun:
        return rows.lock_run(run_id)

    def claim(self, execution_id: int, attempt: int, *, worker: str, job_id: str) -> Any:
        """Claim a delivered attempt; return the execution with its run, or None when
        another delivery has it or its run ended. No transaction: the conditional UPDATE
        alone decides who runs the attempt."""
        claimed = step_transition(
            execution_id,
            at_attempt=attempt,
            current=CLAIMABLE_STEP_STATUSES,
            to=StepStatus.RUNNING,
            finished_at=None,
            retry_at=None,
            **rows.claim_fields(worker, job_id),
        )
        if not claimed:
            return None
        execution = StepExecution.objects.select_related("run").get(pk=execution_id)
        return self.admit(execution)

    def admit(self, execution: StepExecution) -> StepExecution | None:
        """After a claim: a step of a run that ended starts nothing (it is cancelled); a
        pending run starts."""
        run = execution.run
        if self._ended(execution):
            return None
        if run.status == RunStatus.PENDING:
            try:
                run_transition(run, RunStatus.RUNNING)
            except InvalidTransitionError:
                # Changed since we read it: started by another claim (fine), or cancelled.
                run.refresh_from_db(fields=["status"])
                if self._ended(execution):
                    return None
        return execution

    def _ended(self, execution: StepExecution) -> bool:
        run = execution.run
        if run.status in ACTIVE_RUN_STATUSES or execution.kind != StepKind.STEP:
            return False
        step_transition(
            execution.pk,
            at_attempt=execution.attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.CANCELLED,
            finished_at=clock.now(),
            error=f"not started: the run {run_state(run.status)}",
        )
        return True

    # --- success ----------------------------------------------------------------------------

    def commit_success(
        self,
        execution: StepExecution,
        attempt: int,
        outcome: Outcome,
        decision: plan.Decision,
        graph: Graph,
        *,
        reruns: int = 0,
        keep: Budget | None = None,
    ) -> Committed:
        """Commit a body's success and apply ``decision``: in one transaction, under the
        run's lock, fenced by the attempt. Raises StepConflict when a concurrent step took
        a key this attempt staged (nothing is written then)."""
        with transaction.atomic():
            run = self.lock_run(execution.run_id)
            if not step_transition(
                execution.pk,
                at_attempt=attempt,
                current=[StepStatus.RUNNING],
                to=StepStatus.WAITING if isinstance(decision, plan.Pause) else StepStatus.SUCCEEDED,
                **_success_fields(outcome, decision),
            ):
                logger.warning(
                    "rejected stale result of execution %s attempt %s", execution.pk, attempt
                )
                return Committed(Result.STALE)
            self.commit_staged(execution, attempt, outcome)
            rows.record_attempt(execution, attempt, AttemptStatus.SUCCEEDED, conflict_reruns=reruns)
            return self.follow(run, graph, execution, outcome, decision, keep)

    def commit_staged(self, execution: StepExecution, attempt: int, outcome: Outcome) -> None:
        """Apply the attempt's staged context writes; the caller holds the run's lock."""
        staged = outcome.context.staged
        if staged:
            writer = Writer(execution.pk, execution.node, attempt)
            taken = self.merge_context(execution.run_id, staged, writer)
            if taken:
                raise StepConflict(", ".join(taken))

    def follow(
        self,
        run: PipelineRun,
        graph: Graph,
        execution: StepExecution,
        outcome: Outcome,
        decision: plan.Decision,
        keep: Budget | None,
    ) -> Committed:
        """What a committed success sets off, given the run as locked."""
        if isinstance(decision, plan.NextCompensation):
            start_next_compensation(run, graph)
            return Committed(Result.SUCCEEDED)
        if isinstance(decision, plan.Nothing):
            return Committed(Result.SUCCEEDED)
        if run.status not in ACTIVE_RUN_STATUSES:
            # Another branch failed the run, or it was cancelled: start nothing new, but
            # undo this step if it can be undone, or hold it for a resume.
            pausing = isinstance(decision, plan.Pause)
            if run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and not (
                compensate_late(run, graph, execution) or pausing
            ):
                hold(run, execution, outcome.route)
            return Committed(Result.SUCCEEDED)
        if isinstance(decision, plan.Pause):
            if run.status != RunStatus.WAITING:
                run_transition(run, RunStatus.WAITING)
            return Committed(Result.WAITING)
        execution.output = outcome.output
        return Committed(Result.SUCCEEDED, self.advance(run, graph, execution, decision, keep))

    def advance(
        self,
        run: PipelineRun,
        graph: Graph,
        execution: StepExecution,
        decision: plan.Decision,
        keep: Budget | None = None,
    ) -> Kept:
        """Create what follows a succeeded ``execution``; the caller holds the run's lock.
        Returns what was kept for ``keep``'s worker to run next."""
        created: list[StepExecution] = []
        if isinstance(decision, plan.Next):
            created = [rows.same_frame(run, graph, execution, decision.node, decision.payload)]
        elif isinstance(decision, plan.Finish):
            run_transition(run, RunStatus.SUCCEEDED, output=decision.output)
        elif isinstance(decision, plan.Fork):
            barrier = rows.open_barrier(run, execution, decision.join, len(decision.branches))
            created = branches(run, graph, execution, decision, barrier.pk)
        elif isinstance(decision, plan.Arrive):
            created = self.arrive(run, graph, execution)
        elif isinstance(decision, plan.Halt):
            halt_run(run, graph, decision.reason, failed_node=execution.node)
        return self.create(created, graph, keep)

    def arrive(
        self, run: PipelineRun, graph: Graph, execution: StepExecution
    ) -> list[StepExecution]:
        """Count a branch in at its barrier: O(1), one increment. The increment and the
        read happen in this transaction, which holds the barrier row's lock from the
        increment on, so exactly one arrival sees the barrier complete."""
        barrier_id = execution.barrier_id
        assert barrier_id is not None
        StepExecution.objects.filter(pk=execution.pk).update(reported=True)
        JoinBarrier.objects.filter(pk=barrier_id).update(arrived=F("arrived") + 1)
        barrier = JoinBarrier.objects.get(pk=barrier_id)
        return self.fire_join(run, graph, execution, barrier)

    def fire_join(
        self, run: PipelineRun, graph: Graph, execution: StepExecution, barrier: JoinBarrier
    ) -> list[StepExecution]:
        """If ``execution``'s arrival completed ``barrier``, start its join with the
        branches' outputs in branch order (or halt the run)."""
        if not plan.barrier_complete(
            barrier.arrived, barrier.expected, barrier.fired_at is not None
        ):
            return []
        JoinBarrier.objects.filter(pk=barrier.pk).update(fired_at=clock.now())
        outputs: dict[Any, Any] = dict(
            StepExecution.objects.filter(barrier_id=barrier.pk, reported=True)
            .exclude(pk=execution.pk)
            .values_list("branch_index", "output")
        )
        outputs[execution.branch_index] = execution.output
        decision = plan.join(barrier.node, barrier.expected, outputs)
        if isinstance(decision, plan.Halt):
            halt_run(run, graph, decision.reason, failed_node=execution.node)
            return []
        return [
            rows.new_execution(
                run,
                graph,
                decision.node,
                decision.payload,
                barrier_id=barrier.parent_id,
                branch_index=barrier.parent_branch,
            )
        ]

    def create(self, created: list[StepExecution], graph: Graph, keep: Budget | None) -> Kept:
        """Insert new executions, enqueued when the transaction commits, but for what
        ``keep`` takes to run next in this worker's job (:meth:`keep_for`)."""
        successor, items = self.keep_for(created, graph, keep)
        rows.insert(created)
        return self.hand_out(created, graph, successor, items)

    def keep_for(
        self, created: list[StepExecution], graph: Graph, keep: Budget | None
    ) -> tuple[StepExecution | None, list[StepExecution]]:
        """Mark, before they are inserted, the new executions ``keep`` takes: a single one
        is claimed for the worker; of several (a divide's branches, an expand's items),
        the first (an expand's first batch, as many of its items as the step budget has
        room for) stay enqueued under this job's id (:func:`~pipelines.engine.delivery.
        batch_of`) and get no job of their own. Returns the successor and the items."""
        if keep is None or not created or not keep.takes(created[0], graph):
            return None, []
        if len(created) == 1:
            successor = created[0]
            successor.status = StepStatus.RUNNING
            for name, value in rows.claim_fields(keep.worker, keep.job_id).items():
                setattr(successor, name, value)
            return successor, []
        if not keep.job_id:
            return None, []
        batch = created[0].rq_job  # "" when items do not share jobs
        first = [e for e in created if e.rq_job == batch] if batch else created[:1]
        # The rest of the first batch keeps its batch job.
        items = first[: keep.steps_left - 1]
        for item in items:
            item.rq_job = keep.job_id[:200]
        return None, items

    def hand_out(
        self,
        created: list[StepExecution],
        graph: Graph,
        successor: StepExecution | None,
        items: list[StepExecution],
    ) -> Kept:
        """After the insert: jobs for what is not kept (when the transaction commits), and
        what is kept for this worker."""
        taken = {id(e) for e in (successor, *items)}
        enqueue_on_commit(deliveries([e for e in created if id(e) not in taken], graph))
        if successor is not None:
            return Kept(successor=successor)
        return Kept(items=tuple((e.pk, e.attempt) for e in items)) if items else NOTHING_KEPT

    # --- failure ----------------------------------------------------------------------------

    def commit_failure(
        self, execution: StepExecution, attempt: int, failure: Failure, graph: Graph | None
    ) -> Result:
        """Record a failed attempt, then retry it after a backoff or fail it for good."""
        node = graph.find(execution.node) if graph else None
        policy: RetryPolicy | None = (
            node.step.retry_policy() if node and failure.retryable else None
        )
        with transaction.atomic():
            run = self.lock_run(execution.run_id)
            may_retry = run.status in ACTIVE_RUN_STATUSES or execution.kind != StepKind.STEP
            decision = plan.after_failure(policy, attempt, may_retry=may_retry)
            fields: dict[str, Any]
            if isinstance(decision, plan.Retry):
                to = StepStatus.RETRYING
                fields = {"attempt": decision.attempt, "retry_at": clock.later(decision.delay)}
            else:
                to, fields = StepStatus.FAILED, {"finished_at": clock.now()}
            moved = step_transition(
                execution.pk,
                at_attempt=attempt,
                current=[StepStatus.RUNNING],
                to=to,
                error=failure.error,
                **fields,
            )
            if not moved:
                return Result.STALE
            retrying = isinstance(decision, plan.Retry)
            logger.warning(
                "step %s of run %s failed on attempt %s (%s): %s",
                execution.node,
                execution.run_id,
                attempt,
                f"retrying in {decision.delay:.1f}s" if retrying else "no retries left",  # type: ignore[union-attr]
                failure.error,
            )
            rows.record_attempt(
                execution,
                attempt,
                failure.attempt_status,
                error=failure.error,
                traceback=failure.traceback,
            )
            if isinstance(decision, plan.Retry):
                execution.attempt = decision.attempt
                enqueue_on_commit([delivery(execution, graph, delay=decision.delay)])
                return Result.RETRYING
            after_final_failure(run, graph, execution, failure.error, attempt)
        return Result.FAILED

    # --- the context ------------------------------------------------------------------------

    def merge_context(self, run_id: int, writes: Writes, writer: Writer | None) -> list[str]:
        """Apply ``writes`` with their history rows, unless a key written without
        overwrite exists: then nothing is written and the taken keys are returned. The
        caller holds the run's lock."""
        data = RunContext.objects.filter(pk=run_id).values_list("data", flat=True).get()
        taken = [k for k, (_, overwrite) in writes.items() if not overwrite and k in data]
        if taken:
            return taken
        history = []
        for key, (value, overwrite) in writes.items():
            data[key] = value
            history.append(
                ContextWrite(
                    run_id=run_id,
                    key=key,
                    value=value,
                    execution_id=writer.execution_id if writer else None,
                    step=writer.step if writer else "",
                    attempt=writer.attempt if writer else None,
                    overwrite=overwrite,
                    written_at=clock.now(),
                )
            )
        RunContext.objects.filter(pk=run_id).update(data=data, updated_at=clock.now())
        ContextWrite.objects.bulk_create(history)
        return []

    def write_context(self, run_id: int, writes: Writes) -> list[str]:
        """A write from outside a step: committed at once, under the run's lock."""
        with transaction.atomic():
            self.lock_run(run_id)
            return self.merge_context(run_id, writes, None)


def branches(
    run: PipelineRun,
    graph: Graph,
    execution: StepExecution,
    fork: plan.Fork,
    barrier_id: int | None,
) -> list[StepExecution]:
    """The new executions of ``execution``'s divide or expand, in branch order, at
    ``barrier_id`` (None: the barrier is opened by the statement that inserts them)."""
    created = [
        rows.new_execution(run, graph, node, payload, barrier_id=barrier_id, branch_index=i)
        for i, (node, payload) in enumerate(fork.branches)
    ]
    assign_batches(created, execution.pk, fork.batch_size)
    return created


def _success_fields(outcome: Outcome, decision: plan.Decision) -> dict[str, Any]:
    """What a success writes on its own execution row."""
    if isinstance(decision, plan.Pause):
        deadline = clock.later(decision.timeout) if decision.timeout else None
        return {"event_name": decision.name, "event_deadline": deadline}
    return {
        "finished_at": clock.now(),
        "error": "",
        "output": outcome.output,
        "route": decision.route if isinstance(decision, plan.Next) else "",
    }
