"""Reads for commands, the admin and the dashboard. Each is a fixed number of queries,
whatever the size of the run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from pipelines.exceptions import InputValueError
from pipelines.inputs import is_id
from pipelines.masking import mask_entry
from pipelines.models import (
    ContextWrite,
    PipelineRun,
    RunContext,
    StepAttempt,
    StepExecution,
    StepKind,
    StepStatus,
)

STEPS_PER_PAGE = 50
KEYS_PER_PAGE = 100


def _count(steps: QuerySet[StepExecution]) -> Coalesce:
    return Coalesce(Subquery(steps.values("run").annotate(n=Count("pk")).values("n")), 0)


def runs_with_progress(queryset: QuerySet[PipelineRun]) -> QuerySet[PipelineRun]:
    """Annotate steps done / created so far, in the same query as the runs. Correlated
    subqueries, not a join: a join grouped every run with all its steps even to count
    the runs (the paginator, the admin's counts and filters)."""
    steps = StepExecution.objects.filter(run=OuterRef("pk"), kind=StepKind.STEP).order_by()
    return queryset.annotate(
        steps_total=_count(steps),
        steps_done=_count(steps.filter(status=StepStatus.SUCCEEDED)),
    )


def runs_list(
    *,
    pipeline: str = "",
    status: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    q: str = "",
) -> QuerySet[PipelineRun]:
    """Runs, newest first, filtered. ``q`` is a run id, an idempotency key, or a context
    ``key=value`` (the value compared as text, e.g. ``customer_id=7``)."""
    runs = PipelineRun.objects.all()
    if pipeline:
        runs = runs.filter(pipeline=pipeline)
    if status:
        runs = runs.filter(status=status)
    if since:
        runs = runs.filter(created_at__gte=since)
    if until:
        runs = runs.filter(created_at__lt=until)
    q = q.strip()
    if q:
        if "=" in q:
            key, _, value = q.partition("=")
            _check_searchable_key(key.strip())
            # Cast to text: compared as a JSON path, SQLite would parse the typed value as
            # JSON and fail on "a=b=c".
            runs = runs.annotate(
                _searched=Cast(
                    KeyTextTransform(key.strip(), "context_row__data"), output_field=TextField()
                )
            ).filter(_searched=value.strip())
        elif is_id(q):
            runs = runs.filter(Q(pk=int(q)) | Q(idempotency_key=q))
        else:
            runs = runs.filter(idempotency_key__icontains=q)
    return runs_with_progress(runs).order_by("-created_at", "-id")


def _check_searchable_key(key: str) -> None:
    """Django reads a JSON key that int() accepts ("1", "-1", "8_0") as an array index: on
    SQLite "-1" is a malformed path, on PostgreSQL "1" never matches an object's key."""
    try:
        int(key)
    except ValueError:
        return
    raise InputValueError(
        f"q: a context key that reads as a number cannot be searched, got {key!r}"
    )


def run_steps(*, run_id: int) -> QuerySet[StepExecution]:
    """The run's step executions in creation order."""
    return StepExecution.objects.filter(run_id=run_id).order_by("id")


def run_steps_page(*, run_id: int, page: int | str | None) -> Page:
    """A page of steps, each with its attempts (one more query for the page)."""
    steps = run_steps(run_id=run_id).prefetch_related(
        Prefetch("attempts", queryset=StepAttempt.objects.order_by("number"))
    )
    return Paginator(steps, STEPS_PER_PAGE).get_page(page)


def run_waiting_steps(*, run_id: int) -> QuerySet[StepExecution]:
    """The run's steps waiting for an event (halt handlers and compensations never wait
    for one: only steps can be sent events)."""
    return StepExecution.objects.filter(
        run_id=run_id, status=StepStatus.WAITING, kind=StepKind.STEP
    )


def run_waiting_events(*, run_id: int) -> list[str]:
    return sorted(set(run_waiting_steps(run_id=run_id).values_list("event_name", flat=True)))


def run_node_counts(*, run_id: int) -> dict[str, dict[str, int]]:
    """{node: {status: count}} for the graph, in one grouped query."""
    counts: dict[str, dict[str, int]] = {}
    rows = (
        StepExecution.objects.filter(run_id=run_id, kind="step")
        .values_list("node", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for node, status, n in rows:
        counts.setdefault(node, {})[status] = n
    return counts


def run_context_history(*, run_id: int) -> QuerySet[ContextWrite]:
    return ContextWrite.objects.filter(run_id=run_id).order_by("id")


@dataclass(frozen=True)
class ContextEntry:
    key: str
    value: Any  # masked when the key looks secret
    writer: str
    earlier: list[Any]  # overwritten values, oldest first (masked alike)


def run_context_entries(*, run_id: int) -> list[ContextEntry]:
    """Each key's current value and who wrote it (one query). For commands and small
    runs; the dashboard pages with :func:`run_context_page`."""
    return _entries(list(run_context_history(run_id=run_id)))


def _entries(writes: list[ContextWrite]) -> list[ContextEntry]:
    by_key: dict[str, list[ContextWrite]] = {}
    for write in writes:
        by_key.setdefault(write.key, []).append(write)
    return [
        ContextEntry(
            key,
            mask_entry(key, history[-1].value),
            history[-1].writer(),
            [mask_entry(key, w.value) for w in history[:-1]],
        )
        for key, history in sorted(by_key.items())
    ]


def run_context_page(*, run_id: int, page: int | str | None) -> tuple[Page, list[ContextEntry]]:
    """A page of context keys (sorted) with their values and writers: two queries."""
    data = RunContext.objects.filter(pk=run_id).values_list("data", flat=True).first() or {}
    keys_page = Paginator(sorted(data), KEYS_PER_PAGE).get_page(page)
    writes = list(
        ContextWrite.objects.filter(run_id=run_id, key__in=list(keys_page.object_list)).order_by(
            "id"
        )
    )
    return keys_page, _entries(writes)


def run_context_after(*, run_id: int, finished: datetime | None) -> dict[str, Any] | None:
    """The context as it stood right after a step that finished at ``finished`` committed
    (masked), or None if that step has not finished. A step's writes commit with its
    finish, under the run's lock, which is also when its finish time is stamped: so the
    writes of steps that finished by then, and those made outside steps by then, were
    there."""
    if finished is None:
        return None
    state: dict[str, Any] = {}
    before = Q(execution__isnull=True, written_at__lte=finished) | Q(
        execution__finished_at__lte=finished
    )
    for key, value in (
        ContextWrite.objects.filter(before, run_id=run_id)
        .order_by("id")
        .values_list("key", "value")
    ):
        state[key] = value
    return {key: mask_entry(key, value) for key, value in sorted(state.items())}
