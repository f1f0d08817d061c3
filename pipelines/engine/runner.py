"""Runs delivered step executions: claim -> body (under heartbeat and timeout) -> decide
what follows (:mod:`.plan`) -> commit it (:mod:`.store`) -> run what the commit kept for
this worker, if anything: a successor it claimed, or the first batch of an expand's items
(:mod:`.continuation`)."""

from __future__ import annotations

import logging
import traceback

from django.db import InterfaceError, OperationalError, close_old_connections, connection

from pipelines import definitions
from pipelines.conf import get_settings
from pipelines.dsl import Graph
from pipelines.engine import plan
from pipelines.engine.body import run_body
from pipelines.engine.continuation import Budget, NextItem, release
from pipelines.engine.delivery import delivery, enqueue, workers_serving
from pipelines.engine.heartbeat import Heartbeat
from pipelines.engine.outcome import NOTHING_KEPT, Committed, Failure, Items, Kept, Outcome, Result
from pipelines.engine.store import get_store
from pipelines.exceptions import MissingStepError, StepConflict, UnknownPipelineError
from pipelines.lifecycle import StepStatus
from pipelines.models import StepExecution
from pipelines.step import Step

logger = logging.getLogger("pipelines.runner")


def run_execution(execution_id: int, attempt: int, *, worker: str = "") -> Result:
    """Run one delivered attempt, with no successor run inline. Returns what became of
    it."""
    execution = get_store().claim(execution_id, attempt, worker=worker, job_id="")
    if execution is None:
        return Result.SKIPPED
    with Heartbeat() as heartbeat:
        return _run_claimed(execution, heartbeat, None)[0]


def run_chain(
    execution_id: int,
    attempt: int,
    *,
    worker: str = "",
    queue: str | None = None,
    job_id: str = "",
    job_budget: float | None = None,
) -> Result:
    """Run an attempt, then keep running what its commit keeps for this worker (its single
    successor on the same queue, or the first batch of the items it expands into) while
    the budget lasts (see :class:`.continuation.Budget`), without a round trip through
    Redis and RQ for each step. Returns what became of the first attempt.

    If the loop is left between two steps (an exception: a job timeout, a cold shutdown),
    the claimed successor or the kept items are handed back to the queue; if the worker
    dies, or a commit's outcome is unknown (its connection dropped), the sweeper reclaims
    the successor once its heartbeat is stale, and gives kept items jobs once the job
    that kept them is dead."""
    budget = Budget(queue, worker, job_id, job_budget)
    execution = get_store().claim(execution_id, attempt, worker=worker, job_id=job_id)
    if execution is None:
        return Result.SKIPPED
    with Heartbeat() as heartbeat:
        return _run_from(execution, heartbeat, budget)[0]


def run_batch(
    items: list[tuple[int, int]],
    *,
    worker: str = "",
    queue: str | None = None,
    job_id: str = "",
    job_budget: float | None = None,
) -> str:
    """Run a batch job's items (an expand's) one after another, each with its own claim,
    while the budget lasts; then hand the rest back to the queue as jobs of their own.
    Returns how many ran."""
    budget = Budget(queue, worker, job_id, job_budget)
    with Heartbeat() as heartbeat:
        ran = _run_items(tuple(items), heartbeat, budget)
    return f"ran {ran} of {len(items)}"


def _run_items(items: Items, heartbeat: Heartbeat, budget: Budget) -> int:
    """Claim and run expand items in order while the budget lasts; the ones not started
    (the budget ran out, or an exception ends the job: its timeout, a SimpleWorker's cold
    shutdown) get jobs of their own. A work horse killed outright hands back nothing: the
    sweeper gives its items jobs once the job is dead. Each item's arrival may claim the
    next one (PostgreSQL), which then needs no claim of its own. Returns how many ran."""
    store = get_store()
    ran = started = 0
    # The items' step timeout (they run the same step), known from the first claim.
    step_timeout: float | None = None
    # An item claimed for this job that has not started: claimed here, or by the arrival
    # of the item before it. Released to the queue if the loop is left before it starts.
    waiting: StepExecution | None = None
    outer = budget.next_item  # an item of an enclosing batch whose step expanded again
    try:
        for index, (execution_id, attempt) in enumerate(items):
            if waiting is None:
                if started and not budget.fits_another(step_timeout or get_settings().step_timeout):
                    break
                waiting = store.claim(
                    execution_id, attempt, worker=budget.worker, job_id=budget.job_id
                )
            # else: within the budget, which the arrival that claimed it checked
            started += 1
            if waiting is None:
                continue
            if step_timeout is None:
                step_timeout = _step_timeout(waiting)
            following = items[index + 1] if index + 1 < len(items) else None
            budget.next_item = NextItem(*following, step_timeout) if following else None
            execution, waiting = waiting, None
            _, waiting = _run_from(execution, heartbeat, budget)
            ran += 1
    finally:
        budget.next_item = outer
        rest = items[started:]
        if waiting is not None:
            _release(waiting)
            rest = tuple(item for item in rest if item[0] != waiting.pk)
        if rest:
            _hand_back(rest)
    return ran


def _step_timeout(execution: StepExecution) -> float:
    graph = definitions.graph_or_none(execution.run)
    node = graph.find(execution.node) if graph else None
    return float(node.step.step_timeout() if node else get_settings().step_timeout)


def _release(execution: StepExecution) -> None:
    release(execution, definitions.graph_or_none(execution.run))


def _hand_back(items: Items) -> None:
    """Items this job will not run get jobs of their own (a claim that already
    happened elsewhere makes them no-ops)."""
    try:
        rows = StepExecution.objects.filter(
            pk__in=[i for i, _ in items], status=StepStatus.ENQUEUED
        ).select_related("run")
        enqueue([delivery(e, definitions.graph_or_none(e.run)) for e in rows])
    except Exception:
        # Their job is gone soon (this one), and the sweeper gives them jobs then.
        logger.exception("could not hand %s expand items back to the queue", len(items))


def _run_from(
    execution: StepExecution, heartbeat: Heartbeat, budget: Budget
) -> tuple[Result, StepExecution | None]:
    """Run a claimed execution and what the commits keep for this worker: successors
    claimed for it, or the first batch of an expand's items. Returns the first result,
    and the batch item the last commit claimed next for this worker, if any (its batch
    loop runs it)."""
    first: Result | None = None
    graph: Graph | None = None
    # Outside the loop body, ``claimed`` is an execution claimed for this worker that has
    # not started: the one to hand back if the loop is left early.
    claimed: StepExecution | None = execution
    # Likewise, expand items kept for this worker that have not been passed on to
    # _run_items, which hands back what it does not reach itself.
    items: Items = ()
    ahead: StepExecution | None = None
    try:
        while claimed is not None:
            keep = budget.keep()
            execution, claimed = claimed, None  # started: from here on it is not handed back
            result, kept, graph = _run_claimed(execution, heartbeat, keep)
            claimed, items, ahead = kept.successor, kept.items, kept.ahead
            first = first or result
            budget.steps_left -= 1
        if items:
            batch, items = items, ()
            _run_items(batch, heartbeat, budget)
    finally:
        if claimed is not None and graph is not None:
            release(claimed, graph)
        if items:
            _hand_back(items)
    return first or Result.SKIPPED, ahead


def _run_claimed(
    execution: StepExecution, heartbeat: Heartbeat, keep: Budget | None
) -> tuple[Result, Kept, Graph | None]:
    """Run a claimed execution's body and commit its outcome. Returns the result, what
    the commit kept for this worker, and the graph."""
    run = execution.run
    attempt = execution.attempt
    try:
        graph: Graph | None = definitions.graph_for(run)
    except (MissingStepError, UnknownPipelineError) as exc:
        failure = Failure(f"{type(exc).__name__}: {exc}", "", retryable=False)
        return get_store().commit_failure(execution, attempt, failure, None), NOTHING_KEPT, None
    node = graph.find(execution.node) if graph else None
    if graph is None or node is None or node.step.__name__ != execution.step:
        failure = Failure(
            f"pipeline {run.pipeline} changed while run {run.pk} was in flight: it has no "
            f"node {execution.node} running {execution.step} any more",
            "",
            retryable=False,
        )
        failed = get_store().commit_failure(execution, attempt, failure, graph)
        return failed, NOTHING_KEPT, graph
    with heartbeat.watch(execution.pk, attempt):
        result, following = _run_attempt(execution, attempt, node.step, graph, keep)
    return result, following, graph


def _run_attempt(
    execution: StepExecution,
    attempt: int,
    step_class: type[Step],
    graph: Graph,
    keep: Budget | None,
) -> tuple[Result, Kept]:
    store = get_store()
    reruns = 0
    while True:
        outcome = run_body(execution, attempt, step_class, graph, execution.run)
        if isinstance(outcome, Failure):
            return store.commit_failure(execution, attempt, outcome, graph), NOTHING_KEPT
        expand_queue = plan.expand_queue(graph, execution.node)
        workers = workers_serving(expand_queue) if expand_queue else 0
        decision = plan.for_execution(
            graph, execution, outcome.output, outcome.route, outcome.wait, workers=workers
        )
        try:
            committed = _succeed_reconnecting(
                execution, attempt, outcome, decision, graph, reruns=reruns, keep=keep
            )
            return committed.result, committed.kept
        except StepConflict:
            # A concurrent step committed a key this attempt staged. Run the body again so
            # the step's own code meets OverwriteError at its set() call, exactly as if
            # writes were immediate. Not a retry: the attempt number stays the same.
            reruns += 1
            if reruns > get_settings().max_conflict_reruns:
                failure = Failure(
                    f"gave up after {reruns - 1} re-runs: concurrent steps kept taking the "
                    f"context keys this step writes",
                    "",
                )
                return store.commit_failure(execution, attempt, failure, graph), NOTHING_KEPT
        except Exception as exc:
            # The body succeeded but its result could not be committed (a database error,
            # a lock timeout, an engine bug). Record it as this attempt's failure so the
            # execution is retried or the run halts, instead of staying "running".
            logger.exception("could not commit execution %s attempt %s", execution.pk, attempt)
            close_old_connections()  # e.g. the connection was terminated under us
            failure = Failure(
                f"could not commit the step's result: {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            )
            return store.commit_failure(execution, attempt, failure, graph), NOTHING_KEPT


def _succeed_reconnecting(
    execution: StepExecution,
    attempt: int,
    outcome: Outcome,
    decision: plan.Decision,
    graph: Graph,
    *,
    reruns: int,
    keep: Budget | None,
) -> Committed:
    """Commit a success; if that fails on the database connection (it died while the
    body ran: an outage, a failover), once more on a new one. The commit is fenced by
    the attempt, so a first try that did land makes the second a no-op (stale), never a
    second success."""
    store = get_store()
    try:
        return store.commit_success(
            execution, attempt, outcome, decision, graph, reruns=reruns, keep=keep
        )
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise  # the caller's transaction is lost with it
        connection.close()
        return store.commit_success(
            execution, attempt, outcome, decision, graph, reruns=reruns, keep=keep
        )
