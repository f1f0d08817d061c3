"""How the ``pipelines`` command shows a run: its JSON shape, its one-line summary, its
dashboard URL, tables. Everything returned here is masked; the command escapes it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.urls import NoReverseMatch, reverse

from pipelines import selectors
from pipelines.conf import dashboard_url
from pipelines.lifecycle import run_state
from pipelines.management.terminal import one_line
from pipelines.masking import mask, mask_text
from pipelines.models import PipelineRun, StepExecution
from pipelines.timestamps import timestamp


def run_url(run_id: int, *, base_url: str | None = None) -> str | None:
    """The run's dashboard page: absolute with ``--base-url`` or
    ``PIPELINES_DASHBOARD_URL``, else the path the dashboard is mounted at; None when the
    project's URLconf does not include ``pipelines.urls``."""
    base = (base_url if base_url is not None else dashboard_url()).rstrip("/")
    try:
        return base + reverse("pipelines:run", args=[run_id])
    except NoReverseMatch:
        return None


NO_DASHBOARD = "- (include pipelines.urls in your URLconf for the dashboard)"


def with_progress(run_id: int) -> PipelineRun:
    """The run with ``steps_done``/``steps_total`` annotated (one query)."""
    return selectors.runs_with_progress(PipelineRun.objects.filter(pk=run_id)).get()


def error_line(error: str) -> str:
    """A run's whole error on one line (a compensation's failure is a second line)."""
    return " | ".join(line.strip() for line in mask_text(error).splitlines() if line.strip())


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def run_dict(run: PipelineRun, *, base_url: str | None = None) -> dict[str, Any]:
    return {
        "id": run.pk,
        "pipeline": run.pipeline,
        "status": run.status,
        "url": run_url(run.pk, base_url=base_url),
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_seconds": seconds_between(run.created_at, run.finished_at),
        "idempotency_key": mask_text(run.idempotency_key or "") or None,
        "steps_done": getattr(run, "steps_done", None),
        "steps_total": getattr(run, "steps_total", None),
        "error": mask_text(run.error),
    }


def summary(run: PipelineRun) -> str:
    """``run 7 (FulfilOrder) has succeeded``."""
    return f"run {run.pk} ({run.pipeline}) {run_state(run.status)}"


def step_dict(step: StepExecution) -> dict[str, Any]:
    return {
        "id": step.pk,
        "node": step.node,
        "kind": step.kind,
        "status": step.status,
        "attempts": step.attempt,
        "started_at": step.started_at.isoformat() if step.started_at else None,
        "finished_at": step.finished_at.isoformat() if step.finished_at else None,
        "duration_seconds": seconds_between(step.started_at, step.finished_at),
        "error": mask_text(step.error),
    }


def show_text(run: PipelineRun, data: dict[str, Any], entries: list[Any]) -> str:
    """``show``'s readable form of ``data`` (a :func:`run_dict` with steps)."""
    duration = data["duration_seconds"]
    lines = [
        summary(run),
        f"url:      {data['url'] or NO_DASHBOARD}",
        f"created:  {timestamp(run.created_at)}   started: {timestamp(run.started_at)}   "
        f"finished: {timestamp(run.finished_at)}"
        + (f"   took: {duration:.3f}s" if duration is not None else ""),
        f"steps:    {data['steps_done']} of {data['steps_total']} done",
    ]
    if run.error:
        lines.append(f"error:    {error_line(run.error)}")
    lines += [
        f"input:    {one_line(json.dumps(data['input'], ensure_ascii=False))}",
        f"output:   {one_line(json.dumps(data['output'], ensure_ascii=False))}",
        "",
        table(
            [
                [
                    str(s["id"]),
                    s["node"],
                    s["kind"],
                    s["status"],
                    str(s["attempts"]),
                    f"{s['duration_seconds']:.3f}s" if s["duration_seconds"] is not None else "-",
                    error_line(s["error"]),
                ]
                for s in data["steps"]
            ],
            ["id", "step", "kind", "status", "attempts", "took", "error"],
        ),
        "",
        "context:",
    ]
    lines += [
        f"  {one_line(e.key)} = {one_line(json.dumps(e.value, ensure_ascii=False))}  [{e.writer}]"
        for e in entries
    ] or ["  (empty)"]
    return "\n".join(lines)


def show_data(run: PipelineRun, *, base_url: str | None, max_steps: int) -> tuple[Any, str]:
    steps = list(selectors.run_steps(run_id=run.pk)[:max_steps])
    entries = selectors.run_context_entries(run_id=run.pk)
    data = {
        **run_dict(run, base_url=base_url),
        "input": mask(run.input),
        "output": mask(run.output),
        "steps": [step_dict(s) for s in steps],
        "context": {e.key: {"value": e.value, "written_by": e.writer} for e in entries},
    }
    return data, show_text(run, data, entries)


def table(rows: list[list[Any]], headers: list[str]) -> str:
    rows = [[one_line(c) for c in row] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
