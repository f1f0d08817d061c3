"""Deciding what runs next once a step succeeded: chain, divide, expand, divert, joins.

Called inside the completing step's transaction, with the run's lock held, so everything
it creates commits (and is enqueued) together with the step's own result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.utils import timezone

from pipelines.conf import get_settings
from pipelines.dsl import Chain, Divert, Divide, End, Expand, Graph
from pipelines.engine.enqueue import BATCH_PREFIX, Batch, Delivery, batch_job_id
from pipelines.engine.transitions import run_transition
from pipelines.exceptions import OutputValueError
from pipelines.models import (
    JoinBarrier,
    PipelineRun,
    RunStatus,
    StepExecution,
    StepKind,
    StepStatus,
)
from pipelines.values import check_json


class Halt(Exception):
    """The run must fail with this reason (e.g. an expand over the limit)."""


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
    )


def batch_size(items: int) -> int:
    """Items per job for an expand of ``items``: one job per item costs an RQ round trip
    per item, which dominated big fan-outs, so they share jobs of up to
    PIPELINES_EXPAND_BATCH items. Small expands keep a job per item, and every expand
    keeps at least 64 jobs, so that many workers can share it."""
    conf = get_settings()
    if conf.eager_steps <= 1:
        return 1  # a batch runs its items under the continuation budget: none to spare
    return max(1, min(conf.expand_batch, items // 64))


def deliveries(created: list[StepExecution], graph: Graph) -> list[Delivery | Batch]:
    """The jobs for new executions: one each, or one per batch for expand items."""
    jobs: list[Delivery | Batch] = []
    batches: dict[str, list[StepExecution]] = {}
    for execution in created:
        if execution.rq_job.startswith(BATCH_PREFIX) and execution.status == StepStatus.ENQUEUED:
            batches.setdefault(execution.rq_job, []).append(execution)
        else:
            jobs.append(delivery(execution, graph))
    for name, members in batches.items():
        first = delivery(members[0], graph)
        items = tuple((e.pk, e.attempt) for e in members)
        jobs.append(Batch(items, first.queue, first.timeout, name))
    return jobs


def delivery(execution: StepExecution, graph: Graph) -> Delivery:
    step = graph.node(execution.node).step
    return Delivery(execution.pk, execution.attempt, execution.queue, step.job_timeout())


def redelivery(execution: StepExecution, *, at_front: bool = False) -> Delivery:
    """The job for an execution whose step class may no longer be in the graph."""
    from pipelines import registry

    try:
        timeout = registry.get(execution.run.pipeline).graph.node(execution.node).step.job_timeout()
    except Exception:
        timeout = get_settings().step_timeout + 60
    return Delivery(execution.pk, execution.attempt, execution.queue, timeout, at_front=at_front)


def _open_barrier(
    run: PipelineRun, execution: StepExecution, join: str, expected: int
) -> JoinBarrier:
    return JoinBarrier.objects.create(
        run=run,
        node=join,
        expected=expected,
        parent_id=execution.barrier_id,
        parent_branch=execution.branch_index,
    )


@dataclass(frozen=True)
class Single:
    """A step that leads to one place: the next node in the step's own frame, or the
    run's end (``node`` None), and the fields to save on the step itself."""

    node: str | None
    own_fields: dict[str, Any]


def single_successor(
    graph: Graph, execution: StepExecution, output: Any, route: str | None
) -> Single | None:
    """What follows a chain, a divert or a top-level end; None for the transitions that
    need the database to decide (divide, expand, the arrival at a join)."""
    transition = graph.node(execution.node).transition
    if isinstance(transition, Chain):
        return Single(transition.next, {})
    if isinstance(transition, Divert):
        routes = dict(transition.routes)
        key = route if route is not None else (output if isinstance(output, str) else None)
        chosen = key if key in routes else "otherwise"
        return Single(routes.get(chosen, transition.otherwise), {"route": chosen})
    if isinstance(transition, End) and execution.barrier_id is None:
        return Single(None, {})
    return None


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


def advance(
    run: PipelineRun, graph: Graph, execution: StepExecution, output: Any, route: str | None
) -> tuple[list[StepExecution], dict[str, Any]]:
    """Create the executions that follow ``execution``; return them and the fields to save
    on ``execution`` itself (``reported``, ``route``)."""
    single = single_successor(graph, execution, output, route)
    if single is not None:
        if single.node is None:
            run_transition(run, RunStatus.SUCCEEDED, output=output)
            return [], {}
        return [same_frame(run, graph, execution, single.node, output)], single.own_fields
    transition = graph.node(execution.node).transition
    if isinstance(transition, Divide):
        barrier = _open_barrier(run, execution, transition.join, len(transition.branches))
        created = [
            new_execution(run, graph, entry, output, barrier_id=barrier.pk, branch_index=i)
            for i, entry in enumerate(transition.branches)
        ]
        return created, {}
    if isinstance(transition, Expand):
        limit = get_settings().max_expand
        if len(output) > limit:
            raise Halt(
                f"step {execution.node} returned {len(output)} elements to expand, over the "
                f"limit of {limit} (PIPELINES_MAX_EXPAND)"
            )
        if not output:
            return [same_frame(run, graph, execution, transition.join, [])], {}
        barrier = _open_barrier(run, execution, transition.join, len(output))
        created = [
            new_execution(run, graph, transition.entry, item, barrier_id=barrier.pk, branch_index=i)
            for i, item in enumerate(output)
        ]
        size = batch_size(len(created))
        if size > 1:
            for start in range(0, len(created), size):
                for item in created[start : start + size]:
                    item.rq_job = batch_job_id(barrier.pk, start)
        return created, {}
    assert isinstance(transition, End)  # in a branch: the arrival at its join
    return _arrive(run, graph, execution), {"reported": True}


def _arrive(run: PipelineRun, graph: Graph, execution: StepExecution) -> list[StepExecution]:
    """Count this branch in; the arrival that completes the barrier starts the join.

    O(1) per branch: one increment. Exactly once: the increment and the read happen in the
    same transaction while this transaction holds the barrier row's lock.
    """
    barrier_id = execution.barrier_id
    assert barrier_id is not None
    JoinBarrier.objects.filter(pk=barrier_id).update(arrived=F("arrived") + 1)
    barrier = JoinBarrier.objects.get(pk=barrier_id)
    if barrier.arrived < barrier.expected or barrier.fired_at is not None:
        return []
    return fire_join(run, graph, execution, barrier)


def fire_join(
    run: PipelineRun, graph: Graph, execution: StepExecution, barrier: JoinBarrier
) -> list[StepExecution]:
    """The last arrival at ``barrier`` starts its join with the branches' outputs in
    branch order. Called once per barrier: by the transaction whose increment completed
    it, which holds the run's lock and the barrier row's."""
    barrier_id = barrier.pk
    JoinBarrier.objects.filter(pk=barrier_id).update(fired_at=timezone.now())

    # On the general path this execution's own "reported" flag is saved by the caller
    # after we return, so its output is taken from memory rather than from the query.
    outputs = dict(
        StepExecution.objects.filter(barrier_id=barrier_id, reported=True)
        .exclude(pk=execution.pk)
        .values_list("branch_index", "output")
    )
    outputs[execution.branch_index] = execution.output
    ordered = [outputs.get(i) for i in range(barrier.expected)]
    try:
        # Each output passed the limits alone; together they may not.
        check_json(ordered, where=f"joined outputs for {barrier.node}", error=OutputValueError)
    except OutputValueError as exc:
        raise Halt(str(exc)) from None
    return [
        new_execution(
            run,
            graph,
            barrier.node,
            ordered,
            barrier_id=barrier.parent_id,
            branch_index=barrier.parent_branch,
        )
    ]
