"""The PostgreSQL store: the frequent commits in one statement each (``queries.sql``),
the rest as the portable store does them.

One statement replaces a transaction of several round trips for: the claim; a success
followed by one step in the same frame or by the run's end (plan.Next, plan.Finish); a
branch's arrival at its join (plan.Arrive), which may also claim the batch's next item;
a divide or expand with all its branches (plan.Fork); and context writes. Sent alone, with no
staged context writes, it is autocommitted: one round trip. Only the arrival that
completes its barrier takes a transaction, to fire the join in it. It applies the same
decision objects as :class:`~pipelines.engine.store.orm.OrmStore`; a test runs both
stores on the same scenarios and compares the rows they leave.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Model

from pipelines.dsl import Graph
from pipelines.engine import plan, rows
from pipelines.engine.continuation import Budget
from pipelines.engine.outcome import Committed, Kept, Outcome, Result
from pipelines.engine.store.orm import OrmStore, Writer, Writes, branches, logger
from pipelines.engine.store.sql import statement
from pipelines.lifecycle import ACTIVE_RUN_STATUSES, RunStatus, StepStatus
from pipelines.models import JoinBarrier, PipelineRun, StepExecution
from pipelines.values import encode


def _instance(model: type[Model], names: list[str], values: list[Any]) -> Any:
    """A model instance from raw columns, converted as the ORM would."""
    by_column: dict[Any, Any] = dict(zip(names, values, strict=True))
    fields = list(model._meta.concrete_fields)
    converted = []
    for field in fields:
        value = by_column[field.column]
        if hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _json(model: type[Model], name: str, value: Any) -> Any:
    """A JSON parameter, encoded as the model's field encodes it."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)  # type: ignore[union-attr]


class _Sent(NamedTuple):
    """What the ``succeed`` statement returned."""

    run_status: str  # as locked
    fenced: bool  # the step was running at the attempt, in an active run
    changed: bool  # the step moved to succeeded
    created: list[int]  # the new executions' ids: the successor, or the branches in order
    opened: int | None  # the barrier a divide or expand opened
    barrier: list[Any]  # the counted barrier's columns (NULLs when none)
    ahead: StepExecution | None  # the batch item the statement claimed


BARRIER_COLUMNS = 8  # as the statement returns them: bar.*


def _execute(name: str, params: dict[str, Any]) -> _Sent:
    """Send ``succeed`` or ``fork`` (which return the same columns, but the claimed item's:
    a fork claims none)."""
    with connection.cursor() as cursor:
        cursor.execute(statement(name), params)
        row = cursor.fetchone()
        split = 6 + BARRIER_COLUMNS
        ahead = None
        if len(row) > split and row[split] is not None:  # the claimed item's id
            names = [column.name for column in cursor.description[split:]]
            ahead = _instance(StepExecution, names, list(row[split:]))
    run_status, fenced, changed, successor, opened, branches = row[:6]
    created = [successor] if successor is not None else branches or []
    return _Sent(run_status, bool(fenced), bool(changed), created, opened, row[6:split], ahead)


def _row(execution: StepExecution) -> dict[str, Any]:
    """A divide's or expand's new branch as the statement inserts it (``created``)."""
    return {
        "node": execution.node,
        "step": execution.step,
        "queue": execution.queue,
        "payload": execution.payload,
        "barrier_id": execution.barrier_id,
        "branch_index": execution.branch_index,
        "worker": execution.worker,
        "rq_job": execution.rq_job,
        "claimed": execution.status == StepStatus.RUNNING,
    }


class PostgresStore(OrmStore):
    name = "postgresql"

    def __init__(self) -> None:
        # The barrier this process's last counted arrival left one short, if any: the
        # next arrival there (of the one item not in yet) completes it, so it goes
        # straight to the transaction that fires the join.
        self._one_short: int | None = None

    def claim(self, execution_id: int, attempt: int, *, worker: str, job_id: str) -> Any:
        with connection.cursor() as cursor:
            cursor.execute(
                statement("claim"),
                {
                    "claim": execution_id,
                    "claim_attempt": attempt,
                    "worker": worker[:200],
                    "job": job_id[:200],
                },
            )
            row = cursor.fetchone()
            names = [column.name for column in cursor.description]
        if row is None:
            return None
        split = len(StepExecution._meta.concrete_fields)
        execution: StepExecution = _instance(StepExecution, names[:split], list(row[:split]))
        run: PipelineRun = _instance(PipelineRun, names[split:-1], list(row[split:-1]))
        if row[-1] is not None:  # this claim started the run: the joined row is older
            run.status = RunStatus.RUNNING
            run.started_at = row[-1]
        execution.run = run
        return self.admit(execution)

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
        if isinstance(decision, plan.Next | plan.Finish | plan.Fork | plan.Arrive):
            committed = self._succeed(execution, attempt, outcome, decision, graph, reruns, keep)
            if committed is not None:
                return committed
        # Other decisions, and a run that is no longer active (the statement wrote nothing:
        # what a late success means is decided under the lock, as everywhere).
        return super().commit_success(
            execution, attempt, outcome, decision, graph, reruns=reruns, keep=keep
        )

    def _succeed(
        self,
        execution: StepExecution,
        attempt: int,
        outcome: Outcome,
        decision: plan.Next | plan.Finish | plan.Fork | plan.Arrive,
        graph: Graph,
        reruns: int,
        keep: Budget | None,
    ) -> Committed | None:
        """The one-statement commit; None when the run is no longer active (nothing was
        written)."""
        run = execution.run
        created: list[StepExecution] = []
        fork = decision if isinstance(decision, plan.Fork) else None
        if isinstance(decision, plan.Next):
            created = [rows.same_frame(run, graph, execution, decision.node, decision.payload)]
        elif fork is not None:
            created = branches(run, graph, execution, fork, None)
        successor, items = self.keep_for(created, graph, keep)
        step = graph.node(decision.node).step if isinstance(decision, plan.Next) else None
        arrives = isinstance(decision, plan.Arrive)
        ahead = keep.claims_ahead() if keep is not None and arrives else None
        params = {
            "run": execution.run_id,
            "id": execution.pk,
            "attempt": attempt,
            "reruns": reruns,
            "output": _json(StepExecution, "output", outcome.output),
            "route": decision.route if isinstance(decision, plan.Next) else "",
            "arrives": arrives,
            "completes": False,
            "finishes": isinstance(decision, plan.Finish),
            "next_node": decision.node if isinstance(decision, plan.Next) else None,
            "next_step": step.__name__ if step else None,
            "next_queue": step.queue_name() if step else None,
            "claimed": successor is not None,
            "join": fork.join if fork else None,
            "expected": len(fork.branches) if fork else None,
            "created": encode([_row(e) for e in created]) if fork else "[]",
            "claim": ahead.execution_id if ahead else None,
            "claim_attempt": ahead.attempt if ahead else None,
            "worker": keep.worker[:200] if (successor or ahead) and keep else "",
            "job": keep.job_id[:200] if (successor or ahead) and keep else "",
        }
        name = "fork" if fork else "succeed"
        completes = arrives and execution.barrier_id == self._one_short
        if not (outcome.context.staged or completes):
            # Alone, the statement is its own transaction (autocommit). An arrival that
            # would complete its barrier writes nothing this way, and is sent again below.
            sent = self._send(name, params)
            if not (arrives and sent.fenced and not sent.changed):
                return self._applied(execution, attempt, sent, graph, created, successor, items)
        # Staged writes commit with the statement, and the arrival that completes its
        # barrier fires the join, in one transaction. (Such an arrival claims no next item:
        # every other item has arrived, so none is left to claim.)
        params["completes"] = True
        with transaction.atomic():
            sent = self._send(name, params)
            if sent.changed:
                self.commit_staged(execution, attempt, outcome)
                if arrives and sent.ahead is None:  # with a next item, the barrier is short
                    fired = self._arrived(execution, outcome, graph, keep, sent)
                    return Committed(Result.SUCCEEDED, fired)
            return self._applied(execution, attempt, sent, graph, created, successor, items)

    def _send(self, name: str, params: dict[str, Any]) -> _Sent:
        """Execute ``name``, and note whether the arrival it counted left its barrier one
        short."""
        sent = _execute(name, params)
        counted = sent.barrier
        if counted[0] is not None:  # (id, run_id, node, expected, arrived, ...)
            self._one_short = counted[0] if counted[4] == counted[3] - 1 else None
        return sent

    def _applied(
        self,
        execution: StepExecution,
        attempt: int,
        sent: _Sent,
        graph: Graph,
        created: list[StepExecution],
        successor: StepExecution | None,
        items: list[StepExecution],
    ) -> Committed | None:
        """What the statement did, for a commit that fired no join."""
        if not sent.changed:
            if sent.run_status not in ACTIVE_RUN_STATUSES:
                return None
            logger.warning(
                "rejected stale result of execution %s attempt %s", execution.pk, attempt
            )
            return Committed(Result.STALE)
        if sent.ahead is not None:
            sent.ahead.run = execution.run
            execution.run.status = sent.run_status  # as the lock found it: active
            return Committed(Result.SUCCEEDED, Kept(ahead=sent.ahead))
        for new, pk in zip(created, sent.created, strict=True):
            new.pk = pk
            if new.barrier_id is None:
                new.barrier_id = sent.opened  # a branch of the barrier opened (or none)
        rows.forget_computed(created)
        return Committed(Result.SUCCEEDED, self.hand_out(created, graph, successor, items))

    def _arrived(
        self,
        execution: StepExecution,
        outcome: Outcome,
        graph: Graph,
        keep: Budget | None,
        sent: _Sent,
    ) -> Kept:
        """After an arrival's statement: fire the join if it completed the barrier."""
        bar = sent.barrier
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
        run = execution.run
        run.status = sent.run_status  # as the lock found it
        execution.output = outcome.output
        return self.create(self.fire_join(run, graph, execution, barrier), graph, keep)

    def merge_context(self, run_id: int, writes: Writes, writer: Writer | None) -> list[str]:
        guarded = [key for key, (_, overwrite) in writes.items() if not overwrite]
        with connection.cursor() as cursor:
            cursor.execute(
                statement("merge_context"),
                {
                    "guarded": guarded,
                    "run": run_id,
                    "execution": writer.execution_id if writer else None,
                    "step": writer.step if writer else "",
                    "attempt": writer.attempt if writer else None,
                    "writes": encode(
                        [{"key": k, "value": v, "overwrite": ow} for k, (v, ow) in writes.items()]
                    ),
                },
            )
            if cursor.rowcount > 0:
                return []
        return guarded or list(writes)

    def write_context(self, run_id: int, writes: Writes) -> list[str]:
        # One statement: the context row's lock serialises writers; no run lock needed.
        return self.merge_context(run_id, writes, None)
