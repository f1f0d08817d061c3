"""Running a step's body: build the step, call ``execute`` (or ``compensate``) under the
step's timeout, and check what it returned. Touches the database only through the step's
own context reads."""

from __future__ import annotations

import threading
import traceback
from functools import partial
from typing import Any

from rq.timeouts import UnixSignalDeathPenalty

from pipelines.context import StepContext
from pipelines.dsl import Expand, Graph, Route, WaitForEvent
from pipelines.engine.outcome import Failure, Outcome
from pipelines.exceptions import OutputValueError, StepTimeout
from pipelines.frozen import thaw
from pipelines.lifecycle import RunStatus, StepKind
from pipelines.models import PipelineRun, StepExecution
from pipelines.step import RunInfo, Step
from pipelines.values import check_json, decode

MAX_NAME = 200  # Route keys and event names are stored in 200-character columns


def run_body(
    execution: StepExecution, attempt: int, step_class: type[Step], graph: Graph, run: PipelineRun
) -> Outcome | Failure:
    context = StepContext(run.pk, run.input)
    timeout = step_class.step_timeout()
    try:
        step = step_class(
            context=context,
            run=RunInfo(run.pk, run.pipeline, partial(_cancelled, run.pk)),
            attempt=attempt,
            idempotency_key=execution.idempotency_key,
        )
        result = _call(step, execution, timeout)
    except StepTimeout:
        return Failure(
            f"StepTimeout: timed out after {timeout}s", traceback.format_exc(), timed_out=True
        )
    except Exception as exc:
        return Failure(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    try:
        outcome = _checked(result, context, execution, graph, run)
    except OutputValueError as exc:
        # A deterministic programming error: retrying would return the same value.
        return Failure(f"OutputValueError: {exc}", "", retryable=False)
    return outcome


def _cancelled(run_id: int) -> bool:
    return PipelineRun.objects.filter(pk=run_id, status=RunStatus.CANCELLED).exists()


def _call(step: Step, execution: StepExecution, timeout: int) -> Any:
    # A fresh copy each time: a conflict re-run must not see what the last run mutated.
    payload = thaw(execution.payload)
    body = step.compensate if execution.kind == StepKind.COMPENSATION else step.execute
    if threading.current_thread() is not threading.main_thread():
        return body(payload)  # signals only reach the main thread: no timeout here
    with UnixSignalDeathPenalty(timeout, StepTimeout):
        return body(payload)


def _checked(
    result: Any, context: StepContext, execution: StepExecution, graph: Graph, run: PipelineRun
) -> Outcome:
    where = f"output of step {execution.node} (run {run.pk})"
    outcome = Outcome(result, context)
    if isinstance(result, Route):
        if not isinstance(result.key, str) or not 0 < len(result.key) <= MAX_NAME:
            raise OutputValueError(
                f"{where}: Route key must be a string of 1 to {MAX_NAME} characters, "
                f"got {result.key!r}"
            )
        outcome = Outcome(result.payload, context, route=result.key)
    elif isinstance(result, WaitForEvent):
        if not isinstance(result.name, str) or not 0 < len(result.name) <= MAX_NAME:
            raise OutputValueError(
                f"{where}: WaitForEvent name must be a string of 1 to {MAX_NAME} characters"
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
    # What the next step gets is what a database read would give, also when it runs here.
    outcome.output = decode(stored)
    return outcome
