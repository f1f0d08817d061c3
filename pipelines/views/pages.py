"""Read-only dashboard pages and the fragments the run page polls."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone

from pipelines import (
    definitions,
    progress,
    queue_status,
    registry,
    selectors,
    stats,
    tracebacks,
)
from pipelines.engine import doctor
from pipelines.graph_svg import render_svg
from pipelines.inputs import is_id, parse_id, parse_moment, parse_text
from pipelines.masking import mask, mask_entry
from pipelines.models import PipelineRun, RunStatus, StepExecution
from pipelines.templatetags.pipelines_tags import compact_json, pretty_json
from pipelines.timeline import render_timeline
from pipelines.views.access import viewer_required

RUNS_PER_PAGE = 25
FILTERS = ("pipeline", "status", "since", "q")
SINCE_CHOICES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


@viewer_required
def overview(request: HttpRequest) -> HttpResponse:
    data = stats.overview()
    peak = max((n for _, n in data.throughput), default=0) or 1
    return render(
        request,
        "pipelines/overview.html",
        {
            "overview": data,
            "peak": peak,
            "statuses": RunStatus.values,
            "worker_problems": doctor.diagnose(),
            "queues": queue_status.queues(),
        },
    )


def _since(value: str) -> datetime | None:
    if value in SINCE_CHOICES:
        return timezone.now() - SINCE_CHOICES[value]
    return parse_moment(value, what="since") if value else None


@viewer_required
def runs(request: HttpRequest) -> HttpResponse:
    params = {k: parse_text(request.GET.get(k, ""), what=k) for k in FILTERS}
    if params["status"] and params["status"] not in RunStatus.values:
        params["status"] = ""
    queryset = selectors.runs_list(
        pipeline=params["pipeline"],
        status=params["status"],
        since=_since(params["since"]),
        q=params["q"],
    )
    page = Paginator(queryset, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    counts = selectors.runs_node_counts(run_ids=[run.pk for run in page])
    rows = [
        (run, progress.of_run(run, definitions.graph_or_none(run), counts.get(run.pk, {})))
        for run in page
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "pipelines/runs.html",
        {
            "page": page,
            "rows": rows,
            "params": params,
            "query": query.urlencode(),
            "pipelines": [p.name for p in registry.all_pipelines()],
            "statuses": RunStatus.values,
            "since_choices": list(SINCE_CHOICES),
        },
    )


def _get_run(run_id: int) -> PipelineRun:
    run = PipelineRun.objects.filter(pk=run_id).first() if is_id(str(run_id)) else None
    if run is None:
        raise Http404(f"No run with id {run_id}.")
    return run


LIVE_PARAMS = ("steps", "keys", "after")


def _live_context(request: HttpRequest, run: PipelineRun) -> dict[str, Any]:
    """Everything on the run page: it is all one fragment, re-fetched while the run is
    active, so that every panel (actions, output, context) changes when the run ends."""
    steps_page = selectors.run_steps_page(run_id=run.pk, page=request.GET.get("steps"))
    counts = selectors.run_node_counts(run_id=run.pk)
    graph = definitions.graph_or_none(run)
    graph_svg = render_svg(graph, counts) if graph is not None else None
    # One clock for the header and the timeline: the run's own stamps, or now.
    end = run.finished_at or timezone.now()
    executions = list(steps_page.object_list)
    writes = selectors.run_step_writes(execution_ids=[e.pk for e in executions])
    query = QueryDict(mutable=True)
    for name in LIVE_PARAMS:
        if request.GET.get(name):
            query[name] = request.GET[name]
    return {
        "run": run,
        "active": not run.is_finished,
        "progress": progress.of_run(run, graph, counts),
        "duration": (end - run.created_at).total_seconds(),
        "graph_svg": graph_svg,
        "definition": {
            "hash": (run.definition_id or "")[:12],
            "current": definitions.is_current(run),
        },
        "steps_page": steps_page,
        "steps": [
            {
                "execution": execution,
                "payload": pretty_json(mask(execution.payload)),
                "output": pretty_json(mask(execution.output)),
                "attempts": [
                    {"attempt": a, "tb": tracebacks.split(a.traceback) if a.traceback else None}
                    for a in execution.attempts.all()
                ],
                "writes": [
                    {"key": w.key, "value": compact_json(w.value), "overwrite": w.overwrite}
                    for w in writes.get(execution.pk, [])
                ],
            }
            for execution in executions
        ],
        "timeline": render_timeline(executions, run.created_at, end),
        "live_query": query.urlencode(),
        "input": pretty_json(mask(run.input)),
        "output": pretty_json(mask(run.output)),
        "waiting_events": selectors.run_waiting_events(run_id=run.pk),
        **_context_part(request, run),
    }


def _context_part(request: HttpRequest, run: PipelineRun) -> dict[str, Any]:
    """The context table, or the context as it stood after one step with that step's
    own writes (the per-step diff)."""
    after = request.GET.get("after", "")
    finished_steps = list(
        StepExecution.objects.filter(run=run, finished_at__isnull=False)
        .order_by("id")
        .values_list("id", "node")[:500]
    )
    if not after:
        return {**_context_table(request, run), "finished_steps": finished_steps}
    step = (
        StepExecution.objects.filter(pk=parse_id(after, what="after"), run=run)
        .only("id", "node", "finished_at")
        .first()
    )
    snapshot = selectors.run_context_after(
        run_id=run.pk, finished=step.finished_at if step else None
    )
    diff = selectors.step_diff(execution_id=step.pk) if step else []
    return {
        "finished_steps": finished_steps,
        "snapshot": None if snapshot is None else pretty_json(snapshot),
        "snapshot_step": step,
        "snapshot_diff": [
            {
                "key": w.key,
                "value": compact_json(w.value),
                "overwrite": w.overwrite,
                "previous": compact_json(w.previous) if w.overwrite else "",
                "previous_writer": w.previous_writer,
            }
            for w in diff
        ],
    }


@viewer_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    return render(request, "pipelines/run.html", _live_context(request, _get_run(run_id)))


def _context_table(request: HttpRequest, run: PipelineRun) -> dict[str, Any]:
    keys_page, entries = selectors.run_context_page(run_id=run.pk, page=request.GET.get("keys"))
    return {
        "run": run,
        "keys_page": keys_page,
        "entries": [
            {
                "entry": e,
                "value": pretty_json(e.value),
                "earlier": e.earlier,
                "last": e.history[-1],
                "history": [
                    {"write": w, "value": pretty_json(mask_entry(e.key, w.value))}
                    for w in e.history
                ],
            }
            for e in entries
        ],
    }


@viewer_required
def run_context(request: HttpRequest, run_id: int) -> HttpResponse:
    """The context table, which refreshes itself while the run is active."""
    return render(
        request, "pipelines/_context_table.html", _context_table(request, _get_run(run_id))
    )


@viewer_required
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The part of the run page that updates itself while the run is active."""
    return render(request, "pipelines/_run_live.html", _live_context(request, _get_run(run_id)))
