"""Runs one delivered step execution: claim it, run the body, hand the outcome over.

The claim is a conditional UPDATE that only an execution enqueued for this very attempt
passes, so a duplicate delivery of the same job does nothing. The body runs with a
heartbeat thread (so the sweeper can tell a dead worker from a slow step) and under the
step's timeout. :mod:`pipelines.engine.complete` commits the outcome.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from rq.timeouts import UnixSignalDeathPenalty

from pipelines import context_sql, registry
from pipelines.conf import get_settings
from pipelines.context import StepContext
from pipelines.dsl import Expand, Graph, Route, WaitForEvent
from pipelines.engine import claim_sql
from pipelines.engine.advance import redelivery
from pipelines.engine.complete import Failure, Outcome, fail, succeed
from pipelines.engine.continuation import Budget, claim_fields, release
from pipelines.engine.enqueue import enqueue
from pipelines.engine.heartbeat import Heartbeat
from pipelines.engine.transitions import run_transition, step_transition
from pipelines.exceptions import (
    InvalidTransitionError,
    OutputValueError,
    PipelineError,
    StepConflict,
    StepTimeout,
)
from pipelines.frozen import thaw
from pipelines.models import (
    ACTIVE_RUN_STATUSES,
    CLAIMABLE_STEP_STATUSES,
    PipelineRun,
    RunStatus,
    StepExecution,
    StepKind,
    StepStatus,
)
from pipelines.step import RunInfo, Step
from pipelines.values import check_json, decode

logger = logging.getLogger("pipelines.runner")


def run_chain(
    execution_id: int,
    attempt: int,
    *,
    worker: str = "",
    queue: str | None = None,
    job_id: str = "",
    job_budget: float | None = None,
) -> str:
    """Run an execution, then keep running its single successor on the same queue while
    the budget lasts, without a round trip through Redis and RQ for each step. Returns
    the first execution's outcome.

    A successor is kept only when it will run here: the step budget allows one more, and
    it fits in what is left of this RQ job's timeout (``job_budget`` seconds from now)
    alongside the time budget. The commit that creates a kept successor also claims it
    (see :mod:`.continuation`). If the loop is left between two steps (a signal), the
    successor is handed back to the queue; if the worker dies, or the commit's outcome
    is unknown (its connection dropped), the sweeper reclaims it once its heartbeat is
    stale."""
    budget = Budget(queue, worker, job_id, job_budget)
    execution = _claim(execution_id, attempt, worker, job_id)
    if execution is None:
        return "skipped"
    with Heartbeat() as heartbeat:
        return _run_from(execution, heartbeat, budget)


def run_batch(
    items: list[tuple[int, int]],
    *,
    worker: str = "",
    queue: str | None = None,
    job_id: str = "",
    job_budget: float | None = None,
) -> str:
    """Run the items of a batch job (an expand's items; see advance.batch_size) one after
    another, each with its own claim, while the budget lasts; then hand the rest back to
    the queue as jobs of their own. Returns how many ran."""
    budget = Budget(queue, worker, job_id, job_budget)
    ran = 0
    # The items' step timeout (they run the same step), known from the first claim.
    step_timeout: float | None = None
    with Heartbeat() as heartbeat:
        for index, (execution_id, attempt) in enumerate(items):
            if index and not budget.fits_another(step_timeout or get_settings().step_timeout):
                _hand_back(items[index:])
                break
            execution = _claim(execution_id, attempt, worker, job_id)
            if execution is None:
                continue
            if step_timeout is None:
                step_timeout = _step_timeout(execution)
            _run_from(execution, heartbeat, budget)
            ran += 1
    return f"ran {ran} of {len(items)}"


def _step_timeout(execution: StepExecution) -> float:
    try:
        graph = registry.get(execution.run.pipeline).graph
        return float(graph.node(execution.node).step.step_timeout())
    except (PipelineError, KeyError):
        return float(get_settings().step_timeout)


def _hand_back(items: list[tuple[int, int]]) -> None:
    """Items this batch job will not run get jobs of their own (a claim that already
    happened elsewhere makes them no-ops)."""
    rows = StepExecution.objects.filter(
        pk__in=[i for i, _ in items], status=StepStatus.ENQUEUED
    ).select_related("run")
    enqueue([redelivery(e) for e in rows])


def _run_from(execution: StepExecution, heartbeat: Heartbeat, budget: Budget) -> str:
    """Run a claimed execution and the successors it hands this worker."""
    first: str | None = None
    graph: Graph | None = None
    # Outside the loop body, ``claimed`` is an execution claimed for this worker that has
    # not started: the one to hand back if the loop is left early.
    claimed: StepExecution | None = execution
    try:
        while claimed is not None:
            keep = budget.keep()
            execution, claimed = claimed, None  # started: from here on it is not handed back
            outcome, claimed, graph = _run_claimed(execution, heartbeat, keep)
            first = first or outcome
            budget.steps_left -= 1
    finally:
        if claimed is not None and graph is not None:
            release(claimed, graph)
    return first or "skipped"


def run_execution(execution_id: int, attempt: int, *, worker: str = "") -> str:
    """Run one delivered execution (no continuation). Returns what happened."""
    execution = _claim(execution_id, attempt, worker)
    if execution is None:
        return "skipped"
    with Heartbeat() as heartbeat:
        return _run_claimed(execution, heartbeat, None)[0]


def _run_claimed(
    execution: StepExecution, heartbeat: Heartbeat, keep: Budget | None
) -> tuple[str, StepExecution | None, Graph | None]:
    """Run a claimed execution's body and commit its outcome. Returns the outcome, the
    successor claimed for this worker (if any) and the graph."""
    run = execution.run
    attempt = execution.attempt
    graph: Graph | None = None
    try:
        graph = registry.get(run.pipeline).graph
        node = graph.node(execution.node)
        if node.step.__name__ != execution.step:
            raise KeyError(execution.node)
    except (PipelineError, KeyError):
        failure = Failure(
            f"pipeline {run.pipeline} changed while run {run.pk} was in flight: it has no "
            f"node {execution.node} running {execution.step} any more",
            traceback.format_exc(),
            retryable=False,
        )
        return fail(execution, attempt, failure, graph), None, graph
    with heartbeat.watch(execution.pk, attempt):
        outcome, following = _run_attempt(execution, attempt, node.step, graph, run, keep)
    return outcome, following, graph


def _run_attempt(
    execution: StepExecution,
    attempt: int,
    step_class: type[Step],
    graph: Graph,
    run: PipelineRun,
    keep: Budget | None = None,
) -> tuple[str, StepExecution | None]:
    reruns = 0
    while True:
        outcome = _execute(execution, attempt, step_class, graph, run)
        if isinstance(outcome, Failure):
            return fail(execution, attempt, outcome, graph), None
        try:
            result = succeed(execution, attempt, graph, outcome, reruns, keep=keep)
            return result, outcome.next_execution
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
                return fail(execution, attempt, failure, graph), None
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
            return fail(execution, attempt, failure, graph), None


def _claim(execution_id: int, attempt: int, worker: str, job_id: str = "") -> StepExecution | None:
    """No transaction: the conditional UPDATE alone decides who runs the attempt (its row
    is written when the attempt ends). One statement on PostgreSQL, two elsewhere."""
    now = timezone.now()
    if context_sql.server_side():
        execution = claim_sql.claim(execution_id, attempt, worker, job_id, now)
        if execution is None:
            return None
    else:
        claimed = step_transition(
            execution_id,
            at_attempt=attempt,
            current=CLAIMABLE_STEP_STATUSES,
            to=StepStatus.RUNNING,
            finished_at=None,
            retry_at=None,
            **claim_fields(worker, job_id, now),
        )
        if not claimed:
            return None
        execution = StepExecution.objects.select_related("run").get(pk=execution_id)
    run = execution.run

    def run_ended() -> bool:
        """The run ended while this job was queued: start nothing new."""
        if run.status in ACTIVE_RUN_STATUSES or execution.kind != StepKind.STEP:
            return False
        step_transition(
            execution_id,
            at_attempt=attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.CANCELLED,
            finished_at=now,
            error=f"not started: run is {run.status}",
        )
        return True

    if run_ended():
        return None
    if run.status == RunStatus.PENDING:
        try:
            run_transition(run, RunStatus.RUNNING)
        except InvalidTransitionError:
            # Changed since we read it: started by another claim (fine), or cancelled.
            run.refresh_from_db(fields=["status"])
            if run_ended():
                return None
    return execution


def _call_body(step: Step, execution: StepExecution, timeout: int) -> Any:
    # A fresh copy each time: a conflict re-run must not see what the last run mutated.
    payload = thaw(execution.payload)
    body = step.compensate if execution.kind == StepKind.COMPENSATION else step.execute
    if threading.current_thread() is not threading.main_thread():
        return body(payload)  # signals only reach the main thread: no timeout here
    with UnixSignalDeathPenalty(timeout, StepTimeout):
        return body(payload)


def _execute(
    execution: StepExecution, attempt: int, step_class: type[Step], graph: Graph, run: PipelineRun
) -> Outcome | Failure:
    context = StepContext(run.pk, run.input)
    timeout = step_class.step_timeout()
    try:
        step = step_class(
            context=context,
            run=RunInfo(run.pk, run.pipeline),
            attempt=attempt,
            idempotency_key=execution.idempotency_key,
        )
        result = _call_body(step, execution, timeout)
    except StepTimeout:
        return Failure(
            f"StepTimeout: timed out after {timeout}s", traceback.format_exc(), timed_out=True
        )
    except Exception as exc:
        return Failure(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    where = f"output of step {execution.node} (run {run.pk})"
    outcome = Outcome(result, context)
    try:
        if isinstance(result, Route):
            if not isinstance(result.key, str) or not 0 < len(result.key) <= 200:
                raise OutputValueError(
                    f"{where}: Route key must be a string of 1 to 200 characters, "
                    f"got {result.key!r}"
                )
            outcome = Outcome(result.payload, context, route=result.key)
        elif isinstance(result, WaitForEvent):
            if not isinstance(result.name, str) or not 0 < len(result.name) <= 200:
                raise OutputValueError(
                    f"{where}: WaitForEvent name must be a string of 1 to 200 characters"
                )
            outcome = Outcome(None, context, wait=result)
        stored = check_json(outcome.output, where=where, error=OutputValueError)
        transition = graph.node(execution.node).transition
        if (
            execution.kind == StepKind.STEP
            and outcome.wait is None
            and isinstance(transition, Expand)
            and not isinstance(outcome.output, list)
        ):
            raise OutputValueError(
                f"{where}: expand needs a list to iterate, got {type(outcome.output).__name__}"
            )
    except OutputValueError as exc:
        # A deterministic programming error: retrying would return the same value.
        return Failure(f"OutputValueError: {exc}", "", retryable=False)
    outcome.output = decode(stored)  # as stored: an inline successor gets it so too
    return outcome
