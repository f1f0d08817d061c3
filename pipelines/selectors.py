"""Reads for commands, the admin and the dashboard. Each is a fixed number of queries,
whatever the size of the run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import (
    CharField,
    Count,
    DecimalField,
    Func,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce

from pipelines.exceptions import InputValueError, InvalidValueError
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
from pipelines.values import check_json

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
    ``key=value`` (see :func:`search_value` for how the value is read)."""
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
            key, _, typed = q.partition("=")
            runs = _search_context(runs, _searchable_key(key), search_value(typed))
        elif is_id(q):
            runs = runs.filter(Q(pk=int(q)) | Q(idempotency_key=q))
        else:
            runs = runs.filter(idempotency_key__icontains=q)
    return runs_with_progress(runs).order_by("-created_at", "-id")


def _search_context(runs: QuerySet[PipelineRun], key: str, value: Any) -> QuerySet[PipelineRun]:
    if connections[runs.db].vendor != "mysql":
        return runs.filter(**{f"context_row__data__{key}": value})
    # MariaDB compares JSON values as their unquoted text: the string "7" would equal the
    # number 7, and 7.0 would not. The JSON type and a numeric cast keep the rule above.
    kind = Cast(Func(KeyTransform(key, "context_row__data"), function="JSON_TYPE"), CharField())
    runs = runs.annotate(_kind=kind)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = Cast(
            KeyTextTransform(key, "context_row__data"),
            DecimalField(max_digits=65, decimal_places=30),
        )
        return runs.annotate(_number=number).filter(
            _kind__in=("INTEGER", "DOUBLE"), _number=Decimal(str(value))
        )
    runs = runs.filter(**{f"context_row__data__{key}": value})
    return runs.filter(_kind="STRING") if isinstance(value, str) else runs.exclude(_kind="STRING")


def _searchable_key(key: str) -> str:
    """Django reads a JSON key that int() accepts ("1", "-1", "8_0") as an array index: on
    SQLite "-1" is a malformed path, on PostgreSQL "1" never matches an object's key."""
    key = key.strip()
    if not key:
        raise InputValueError("q: key=value needs a context key before the =, got none")
    try:
        int(key)
    except ValueError:
        return key
    raise InputValueError(
        f"q: a context key that reads as a number cannot be searched, got {key!r}"
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


_SCALAR = json.JSONDecoder(parse_constant=_refuse_constant)


def search_value(typed: str) -> Any:
    """The value a ``key=value`` search looks for. The rule, the same on every database:
    text that is a JSON number, ``true``, ``false``, ``null`` or a "quoted string" is that
    JSON value; anything else is the string itself. Values are then compared as JSON:
    ``customer_id=7`` and ``customer_id=7.0`` find the number 7; ``customer_id=07`` and
    ``customer_id="7"`` find the strings "07" and "7"; ``charge_id=ch_x`` finds "ch_x";
    ``note=`` finds the empty string. Lists and objects cannot be searched: SQLite reads
    them back as text, so they would match a string that reads the same there only; a
    value that starts with ``[`` or ``{`` is refused."""
    typed = typed.strip()
    if typed.startswith(("[", "{")):
        raise InputValueError(
            f"q: lists and objects cannot be searched, got {typed[:40]!r} after the ="
        )
    try:
        value = _SCALAR.decode(typed)
    except ValueError:
        return typed
    try:
        check_json(value, where="q")
    except InvalidValueError:
        return typed  # a number no database stores (1e400, 2**64): nothing can match it
    return value


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
    """{node: {status: count}} for the graph, in one grouped query. A halt handler's and
    a compensation's executions count under ``"halt:<node>"`` and
    ``"compensation:<node>"`` (the node they run for), apart from the steps'."""
    return runs_node_counts(run_ids=[run_id]).get(run_id, {})


def runs_node_counts(*, run_ids: list[int]) -> dict[int, dict[str, dict[str, int]]]:
    """:func:`run_node_counts` for several runs (a page of the runs list), one query."""
    counts: dict[int, dict[str, dict[str, int]]] = {}
    rows = (
        StepExecution.objects.filter(run_id__in=run_ids)
        .values_list("run_id", "kind", "node", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for run_id, kind, node, status, n in rows:
        key = node if kind == StepKind.STEP else f"{kind}:{node}"
        counts.setdefault(run_id, {}).setdefault(key, {})[status] = n
    return counts


def run_context_history(*, run_id: int) -> QuerySet[ContextWrite]:
    return ContextWrite.objects.filter(run_id=run_id).order_by("id")


@dataclass(frozen=True)
class ContextEntry:
    key: str
    value: Any  # masked when the key looks secret
    writer: str
    earlier: list[Any]  # overwritten values, oldest first (masked alike)
    history: list[ContextWrite]  # every write of the key, oldest first (values unmasked)


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
            history,
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


@dataclass(frozen=True)
class StepWrite:
    key: str
    value: Any  # masked alike
    overwrite: bool
    previous: Any = None  # for an overwrite: the value it replaced (masked alike)
    previous_writer: str = ""  # and who had written that value


def step_diff(*, execution_id: int) -> list[StepWrite]:
    """What one step execution wrote, each overwrite with the value it replaced and that
    value's writer: one query, whatever the run's size."""
    earlier = ContextWrite.objects.filter(
        run_id=OuterRef("run_id"), key=OuterRef("key"), id__lt=OuterRef("id")
    ).order_by("-id")
    rows = (
        ContextWrite.objects.filter(execution_id=execution_id)
        .annotate(
            previous_value=Subquery(earlier.values("value")[:1]),
            previous_step=Subquery(earlier.values("step")[:1]),
            previous_execution=Subquery(earlier.values("execution_id")[:1]),
        )
        .order_by("id")
    )
    found = []
    for write in rows:
        before = ""
        if write.overwrite:
            before = (
                f"{write.previous_step} #{write.previous_execution}"
                if write.previous_execution
                else "a write outside a step"
            )
        previous = write.previous_value
        found.append(
            StepWrite(
                write.key,
                mask_entry(write.key, write.value),
                write.overwrite,
                mask_entry(write.key, previous) if write.overwrite else None,
                before,
            )
        )
    return found


def run_step_writes(*, execution_ids: list[int]) -> dict[int, list[StepWrite]]:
    """What each of the given step executions wrote to the context (one query): the
    per-step diff of the run page."""
    found: dict[int, list[StepWrite]] = {}
    rows = (
        ContextWrite.objects.filter(execution_id__in=execution_ids)
        .order_by("id")
        .values_list("execution_id", "key", "value", "overwrite")
    )
    for execution_id, key, value, overwrite in rows:
        found.setdefault(execution_id, []).append(StepWrite(key, mask_entry(key, value), overwrite))
    return found
