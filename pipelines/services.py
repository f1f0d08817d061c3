"""Writes. Views, commands, admin actions and jobs call these; they hold the rules."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pipelines import registry
from pipelines.context import checked_copy, describe_writer
from pipelines.engine.advance import delivery, new_execution
from pipelines.engine.enqueue import enqueue_on_commit
from pipelines.exceptions import InputValueError, OverwriteError
from pipelines.frozen import thaw
from pipelines.models import ContextWrite, PipelineRun, RunContext
from pipelines.values import check_json


def run_trigger(
    *, pipeline: str, input: Any = None, idempotency_key: str | None = None
) -> PipelineRun:
    """Create a run, its context and its first step in one transaction; enqueue the step
    when the transaction commits. Inside a caller's transaction that rolls back, nothing
    is left behind: no run and no job.

    With an ``idempotency_key``, a second trigger of the same pipeline returns the first
    run, also when both race: the database's unique constraint decides, not a lookup.
    """
    graph = registry.get(pipeline).graph
    check_json(input, where="input", error=InputValueError)
    input = thaw(input)  # e.g. another run's read-only context.input
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 255
    ):
        raise InputValueError(
            f"idempotency_key must be a string of 1 to 255 characters, got {idempotency_key!r}"
        )
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = PipelineRun.objects.create(
                    pipeline=pipeline, input=input, idempotency_key=idempotency_key
                )
        except IntegrityError:
            if idempotency_key is None:
                raise
            return PipelineRun.objects.get(pipeline=pipeline, idempotency_key=idempotency_key)
        RunContext.objects.create(run=run, data={})
        first = new_execution(run, graph, graph.entry, input)
        first.save()
        enqueue_on_commit([delivery(first, graph)])
    return run


def context_set(*, run_id: int, key: str, value: Any, overwrite: bool = False) -> None:
    """Write one context key from outside a step: checked and committed at once, under the
    run's lock, with the same write-once rule as steps."""
    key, value = checked_copy(key, value)
    now = timezone.now()
    with transaction.atomic():
        row = RunContext.objects.select_for_update().get(pk=run_id)
        if key in row.data and not overwrite:
            raise OverwriteError(key, describe_writer(run_id, key))
        row.data[key] = value
        RunContext.objects.filter(pk=run_id).update(data=row.data, updated_at=now)
        ContextWrite.objects.create(
            run_id=run_id, key=key, value=value, overwrite=overwrite, written_at=now
        )
