"""Writes. Views, commands, admin actions and jobs call these; they hold the rules."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.db import IntegrityError, transaction

from pipelines import definitions, registry, selectors
from pipelines.context import checked_copy, describe_writer
from pipelines.engine import clock, plan, rows
from pipelines.engine.delivery import delivery, enqueue_on_commit
from pipelines.engine.halting import start_next_compensation
from pipelines.engine.holding import held_steps, release_held
from pipelines.engine.store import get_store
from pipelines.engine.transitions import run_transition, step_transition, steps_transition
from pipelines.exceptions import (
    EventNotExpectedError,
    IdempotencyKeyReusedError,
    InputValueError,
    InvalidTransitionError,
    OverwriteError,
    PipelineError,
)
from pipelines.lifecycle import (
    ACTIVE_RUN_STATUSES,
    UNSTARTED_STEP_STATUSES,
    RunStatus,
    StepKind,
    StepStatus,
    run_state,
)
from pipelines.models import PipelineRun, RunContext, StepExecution
from pipelines.values import check_text, checked_canonical

MAX_REASON = 2000  # a cancel reason becomes the run's error
MAX_EVENT_NAME = 200  # StepExecution.event_name


def run_trigger(
    *, pipeline: str, input: Any = None, idempotency_key: str | None = None
) -> PipelineRun:
    """Create a run, its context and its first step in one transaction; enqueue the step
    when the transaction commits. Inside a caller's transaction that rolls back, nothing
    is left behind: no run and no job.

    With an ``idempotency_key``, a second trigger of the same pipeline with the same input
    returns the first run, also when both race: the database's unique constraint decides,
    not a lookup. The same key with a different input raises
    :class:`IdempotencyKeyReusedError`.
    """
    graph = registry.get(pipeline).graph
    # As stored; also a plain copy of e.g. another run's read-only context.input.
    input = checked_canonical(input, where="input", error=InputValueError)
    if idempotency_key is not None:
        check_text(idempotency_key, what="idempotency_key", max_length=255, error=InputValueError)
    with transaction.atomic():
        # Only a keyed trigger can collide, so only it pays for the savepoint that lets
        # the caller's transaction go on after the collision.
        try:
            with transaction.atomic() if idempotency_key is not None else nullcontext():
                run = PipelineRun.objects.create(
                    pipeline=pipeline,
                    definition_id=definitions.save(pipeline),
                    input=input,
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = PipelineRun.objects.get(pipeline=pipeline, idempotency_key=idempotency_key)
            # Both inputs are in the stored form, so equal JSON compares equal here.
            if existing.input != input:
                raise IdempotencyKeyReusedError(
                    pipeline=pipeline, key=idempotency_key, run_id=existing.pk
                ) from None
            return existing
        RunContext.objects.create(run=run, data={})
        first = rows.new_execution(run, graph, graph.entry, input)
        rows.insert([first])
        enqueue_on_commit([delivery(first, graph)])
    return run


def context_set(*, run_id: int, key: str, value: Any, overwrite: bool = False) -> None:
    """Write one context key from outside a step: checked and committed at once, with the
    same write-once rule as steps (the store checks it under the run's lock)."""
    key, value = checked_copy(key, value)
    if get_store().write_context(run_id, {key: (value, overwrite)}):
        if not RunContext.objects.filter(pk=run_id).exists():
            raise RunContext.DoesNotExist(f"run {run_id} has no context")
        raise OverwriteError(key, describe_writer(run_id, key))


def run_cancel(*, run_id: int, reason: str = "cancelled") -> PipelineRun:
    """Cancel a run: nothing new starts, queued and waiting steps are cancelled, running
    steps see ``self.cancelled`` and are stopped after ``PIPELINES_CANCEL_GRACE`` seconds,
    and completed steps' compensations run, newest first."""
    check_text(reason, what="reason", max_length=MAX_REASON, error=InputValueError)
    with transaction.atomic():
        run = get_store().lock_run(run_id)
        if run.status not in ACTIVE_RUN_STATUSES:
            raise InvalidTransitionError(
                f"run {run_id} {run_state(run.status)}; only pending, running or waiting runs "
                f"can be cancelled"
            )
        run_transition(run, RunStatus.CANCELLED, error=reason)
        steps_transition(
            StepExecution.objects.filter(run=run, kind=StepKind.STEP),
            current=UNSTARTED_STEP_STATUSES,
            to=StepStatus.CANCELLED,
            finished_at=clock.now(),
            error="run cancelled",
        )
        start_next_compensation(run, definitions.graph_or_none(run))
    return run


def run_resume(*, run_id: int) -> PipelineRun:
    """Resume a failed run from its failed steps, keeping completed steps and context.
    Failed (and never-started) steps get a new attempt."""
    store = get_store()
    with transaction.atomic():
        run = store.lock_run(run_id)
        if run.status != RunStatus.FAILED:
            raise InvalidTransitionError(
                f"run {run_id} {run_state(run.status)}; only failed runs resume"
            )
        if StepExecution.objects.filter(run=run, kind=StepKind.COMPENSATION).exists():
            raise InvalidTransitionError(
                f"run {run_id} was compensated (its completed steps were undone); re-run it "
                f"as a new run instead"
            )
        # A run whose definition's steps no longer exist cannot resume.
        graph = definitions.graph_for(run)
        stopped = StepExecution.objects.filter(
            run=run, kind=StepKind.STEP, status__in=[StepStatus.FAILED, StepStatus.CANCELLED]
        ).select_related("run")
        if not stopped.exists() and not held_steps(run).exists():
            # E.g. an expand over the limit: the step succeeded, what follows it could not
            # start. Resuming would leave a running run with nothing to run.
            raise InvalidTransitionError(
                f"run {run_id} has no failed step to retry (it failed with: {run.error}); "
                f"re-run it as a new run instead"
            )
        run_transition(run, RunStatus.RUNNING, error="")
        try:
            for held in held_steps(run):
                route = release_held(held)
                store.advance(run, graph, held, plan.for_execution(graph, held, held.output, route))
        except (KeyError, PipelineError) as exc:
            raise InvalidTransitionError(
                f"run {run_id} cannot resume: its pipeline changed since it failed ({exc})"
            ) from exc
        if run.status != RunStatus.RUNNING:
            return run  # continuing a held step halted it again (see run.error)
        deliveries = []
        for execution in stopped:
            if step_transition(
                execution.pk,
                at_attempt=execution.attempt,
                current=[execution.status],
                to=StepStatus.ENQUEUED,
                attempt=execution.attempt + 1,
                crash_count=0,
                error="",
                finished_at=None,
                enqueued_at=clock.now(),
            ):
                execution.attempt += 1
                deliveries.append(delivery(execution, graph))
        enqueue_on_commit(deliveries)
    return run


def run_rerun(*, run_id: int) -> PipelineRun:
    """Start a new run of the same pipeline with the same input."""
    run = PipelineRun.objects.get(pk=run_id)
    return run_trigger(pipeline=run.pipeline, input=run.input)


def run_send_event(*, run_id: int, name: str, payload: Any = None) -> PipelineRun:
    """Deliver an event to the step waiting for it; the next step gets ``payload``."""
    check_text(name, what="event name", max_length=MAX_EVENT_NAME, error=InputValueError)
    payload = checked_canonical(payload, where=f"event {name!r} payload", error=InputValueError)
    store = get_store()
    with transaction.atomic():
        run = store.lock_run(run_id)
        waiting = selectors.run_waiting_steps(run_id=run_id)
        execution = waiting.filter(event_name=name).order_by("id").first()
        if execution is None or run.status not in ACTIVE_RUN_STATUSES:
            names = selectors.run_waiting_events(run_id=run_id)
            raise EventNotExpectedError(
                f"run {run_id} ({run.status}) is not waiting for event {name!r}"
                + (f"; it waits for {', '.join(map(repr, names))}" if names else "")
            )
        step_transition(
            execution.pk,
            at_attempt=execution.attempt,
            current=[StepStatus.WAITING],
            to=StepStatus.SUCCEEDED,
            output=payload,
            finished_at=clock.now(),
        )
        if run.status == RunStatus.WAITING and not waiting.exclude(pk=execution.pk).exists():
            run_transition(run, RunStatus.RUNNING)
        execution.output = payload
        graph = definitions.graph_for(run)
        store.advance(run, graph, execution, plan.for_execution(graph, execution, payload))
    return run
