"""Runs one delivered step execution: claim, execute, then commit success or failure.

* Claim: a conditional UPDATE that only an execution enqueued for this very attempt passes,
  so a duplicate delivery of the same job does nothing.
* Success: ONE transaction under the run's lock: re-check staged context writes, store them
  with their history, the output, the attempt, and the next executions; enqueue on commit.
  It is fenced by the attempt: a late result from a superseded attempt changes nothing.
* Failure: record the attempt, then retry with backoff or halt the run.
"""

from __future__ import annotations

import logging
import random
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from pipelines import registry
from pipelines.conf import get_settings
from pipelines.context import StepContext
from pipelines.dsl import Expand, Graph, Route
from pipelines.engine.advance import Halt, advance, delivery, new_execution
from pipelines.engine.enqueue import Delivery, enqueue_on_commit
from pipelines.engine.transitions import run_transition, step_transition
from pipelines.exceptions import OutputValueError, PipelineError, StepConflict
from pipelines.frozen import thaw
from pipelines.models import (
    ACTIVE_RUN_STATUSES,
    CLAIMABLE_STEP_STATUSES,
    AttemptStatus,
    ContextWrite,
    PipelineRun,
    RunContext,
    RunStatus,
    StepAttempt,
    StepExecution,
    StepStatus,
)
from pipelines.step import RetryPolicy, RunInfo, Step
from pipelines.values import check_json

logger = logging.getLogger("pipelines.runner")


@dataclass
class Failure:
    error: str
    traceback: str
    retryable: bool = True


def run_execution(execution_id: int, attempt: int, *, worker: str = "") -> str:
    """Entry point used by the RQ task. Returns what happened, for logs and tests."""
    execution = _claim(execution_id, attempt, worker)
    if execution is None:
        return "skipped"
    run = execution.run
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
        return _fail(execution, attempt, failure, graph)
    reruns = 0
    while True:
        outcome = _execute(execution, attempt, node.step, graph, run)
        if isinstance(outcome, Failure):
            return _fail(execution, attempt, outcome, graph)
        output, route, context = outcome
        try:
            return _succeed(execution, attempt, graph, output, route, context, reruns)
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
                return _fail(execution, attempt, failure, graph)
        except Exception as exc:
            # The body succeeded but its result could not be committed (a database error,
            # a lock timeout, an engine bug). Record it as this attempt's failure so the
            # execution is retried or the run halts, instead of staying "running".
            logger.exception("could not commit execution %s attempt %s", execution.pk, attempt)
            failure = Failure(
                f"could not commit the step's result: {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            )
            return _fail(execution, attempt, failure, graph)


def _claim(execution_id: int, attempt: int, worker: str) -> StepExecution | None:
    now = timezone.now()
    with transaction.atomic():
        claimed = step_transition(
            execution_id,
            at_attempt=attempt,
            current=CLAIMABLE_STEP_STATUSES,
            to=StepStatus.RUNNING,
            started_at=now,
            finished_at=None,
            retry_at=None,
            worker=worker[:200],
        )
        if not claimed:
            return None
        execution = StepExecution.objects.select_related("run").get(pk=execution_id)
        run = execution.run
        if run.status not in ACTIVE_RUN_STATUSES and not execution.is_halt_handler:
            # The run ended while this job was queued: start nothing new.
            step_transition(
                execution_id,
                at_attempt=attempt,
                current=[StepStatus.RUNNING],
                to=StepStatus.CANCELLED,
                finished_at=now,
                error=f"not started: run is {run.status}",
            )
            return None
        if run.status == RunStatus.PENDING:
            run_transition(run, RunStatus.RUNNING)
        StepAttempt.objects.create(
            execution=execution,
            number=attempt,
            status=AttemptStatus.RUNNING,
            worker=worker[:200],
            started_at=now,
        )
    return execution


def _execute(
    execution: StepExecution, attempt: int, step_class: type[Step], graph: Graph, run: PipelineRun
) -> tuple[Any, str | None, StepContext] | Failure:
    context = StepContext(run.pk, run.input)
    try:
        step = step_class(
            context=context,
            run=RunInfo(run.pk, run.pipeline),
            attempt=attempt,
            idempotency_key=execution.idempotency_key,
        )
        # A fresh copy each time: a conflict re-run must not see what the last run mutated.
        result = step.execute(thaw(execution.payload))
    except Exception as exc:
        return Failure(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    route = None
    where = f"output of step {execution.node} (run {run.pk})"
    try:
        if isinstance(result, Route):
            if not isinstance(result.key, str) or not 0 < len(result.key) <= 200:
                raise OutputValueError(
                    f"{where}: Route key must be a string of 1 to 200 characters, "
                    f"got {result.key!r}"
                )
            route, result = result.key, result.payload
        check_json(result, where=where, error=OutputValueError)
        transition = graph.node(execution.node).transition
        if isinstance(transition, Expand) and not isinstance(result, list):
            raise OutputValueError(
                f"{where}: expand needs a list to iterate, got {type(result).__name__}"
            )
    except OutputValueError as exc:
        # A deterministic programming error: retrying would return the same value.
        return Failure(f"OutputValueError: {exc}", "", retryable=False)
    return thaw(result), route, context


def _succeed(
    execution: StepExecution,
    attempt: int,
    graph: Graph,
    output: Any,
    route: str | None,
    context: StepContext,
    reruns: int,
) -> str:
    now = timezone.now()
    with transaction.atomic():
        context_row = RunContext.objects.select_for_update().get(pk=execution.run_id)
        if not step_transition(
            execution.pk,
            at_attempt=attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.SUCCEEDED,
            output=output,
            finished_at=now,
            error="",
        ):
            logger.warning(
                "rejected stale result of execution %s attempt %s", execution.pk, attempt
            )
            return "stale"
        _apply_staged(context_row, execution, attempt, context, now)
        StepAttempt.objects.filter(execution=execution, number=attempt).update(
            status=AttemptStatus.SUCCEEDED, finished_at=now, conflict_reruns=reruns
        )
        if execution.is_halt_handler:
            return "succeeded"
        run = PipelineRun.objects.get(pk=execution.run_id)
        if run.status not in ACTIVE_RUN_STATUSES:
            return "succeeded"  # e.g. another branch failed the run: start nothing new
        execution.output = output
        try:
            created, own_fields = advance(run, graph, execution, output, route)
        except Halt as halt:
            _halt_run(run, graph, str(halt), failed_node=execution.node)
            return "succeeded"
        if own_fields:
            StepExecution.objects.filter(pk=execution.pk).update(**own_fields)
        StepExecution.objects.bulk_create(created)
        enqueue_on_commit([delivery(e, graph) for e in created])
    return "succeeded"


def _apply_staged(
    context_row: RunContext,
    execution: StepExecution,
    attempt: int,
    context: StepContext,
    now: Any,
) -> None:
    if not context.staged:
        return
    data = context_row.data
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
    RunContext.objects.filter(pk=context_row.pk).update(data=data, updated_at=now)
    ContextWrite.objects.bulk_create(writes)


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff for the retry after ``attempt``, capped, with equal jitter so
    that many steps failing together do not retry in lockstep."""
    delay = min(policy.backoff_max, policy.backoff * (2 ** (attempt - 1)))
    if policy.jitter and delay > 0:
        delay = delay / 2 + random.uniform(0, delay / 2)
    return delay


def _fail(execution: StepExecution, attempt: int, failure: Failure, graph: Graph | None) -> str:
    now = timezone.now()
    node = graph.nodes.get(execution.node) if graph else None
    policy = node.step.retry_policy() if node and failure.retryable else None
    with transaction.atomic():
        RunContext.objects.select_for_update().filter(pk=execution.run_id).first()
        run = PipelineRun.objects.get(pk=execution.run_id)
        retry = (
            failure.retryable
            and policy is not None
            and attempt <= policy.retries
            and (run.status in ACTIVE_RUN_STATUSES or execution.is_halt_handler)
        )
        delay = 0.0
        if retry:
            assert policy is not None
            assert graph is not None
            delay = retry_delay(policy, attempt)
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
        StepAttempt.objects.filter(execution=execution, number=attempt).update(
            status=AttemptStatus.FAILED,
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
        if not execution.is_halt_handler and run.status in ACTIVE_RUN_STATUSES:
            attempts = f"{attempt} attempt{'s' if attempt > 1 else ''}"
            reason = f"step {execution.node} failed after {attempts}: {failure.error}"
            _halt_run(run, graph, reason, failed_node=execution.node)
    return "failed"


def _halt_run(run: PipelineRun, graph: Graph | None, reason: str, *, failed_node: str) -> None:
    """Fail the run and start its halt handler, once: the status transition is guarded."""
    run_transition(run, RunStatus.FAILED, error=reason)
    if graph is None or graph.halt is None:
        return
    payload = {"run_id": run.pk, "pipeline": run.pipeline, "step": failed_node, "error": reason}
    handler = new_execution(run, graph, graph.halt.id, payload, is_halt_handler=True)
    handler.save()
    enqueue_on_commit([delivery(handler, graph)])
