"""A Gantt chart of attempts, as SVG drawn on the server."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from pipelines.models import StepExecution

ROW_H, LABEL_W, WIDTH = 18, 190, 900


def render_timeline(executions: Iterable[StepExecution], origin: datetime) -> SafeString:
    """One row per attempt of the given executions (their attempts must be prefetched),
    positioned from ``origin`` (the run's creation)."""
    now = timezone.now()
    rows: list[tuple[StepExecution, Any]] = []
    for execution in executions:
        rows += [(execution, attempt) for attempt in execution.attempts.all()]
        if execution.status == "running" and execution.started_at:
            # A running attempt has no row yet (rows are written when attempts end).
            current = SimpleNamespace(
                number=execution.attempt,
                status="running",
                started_at=execution.started_at,
                finished_at=None,
                worker=execution.worker,
            )
            rows.append((execution, current))
    if not rows:
        return mark_safe('<p class="muted">No attempts yet.</p>')
    end = max((a.finished_at or now) for _, a in rows)
    span = max((end - origin).total_seconds(), 0.001)
    scale = (WIDTH - LABEL_W - 10) / span
    parts = []
    for i, (execution, attempt) in enumerate(rows):
        y = i * ROW_H
        start = (attempt.started_at - origin).total_seconds()
        length = ((attempt.finished_at or now) - attempt.started_at).total_seconds()
        parts.append(
            format_html(
                '<g class="bar status-{}"><title>{} attempt {}: {} ({}s){}</title>'
                '<text class="label" x="0" y="{}">{} #{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" rx="2"/></g>',
                attempt.status,
                execution.node,
                attempt.number,
                attempt.status,
                f"{length:.3f}",
                f" on {attempt.worker}" if attempt.worker else "",
                y + 13,
                execution.node[:24],
                attempt.number,
                f"{LABEL_W + start * scale:.1f}",
                y + 3,
                f"{max(length * scale, 2):.1f}",
                ROW_H - 6,
            )
        )
    height = len(rows) * ROW_H + ROW_H  # a last row for the time axis
    return mark_safe(  # noqa: S308 - parts are built with format_html
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="timeline of attempts">'
        + "".join(parts)
        + f'<text class="axis" x="{WIDTH - 4}" y="{height - 2}" text-anchor="end">'
        f"{span:.2f}s</text></svg>"
    )
