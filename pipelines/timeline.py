"""A Gantt chart of attempts, as SVG drawn on the server, on the header's clock: the
axis runs from the run's creation to its finish (or now), the same span the header's
duration states."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from pipelines.models import StepExecution

ROW_H, LABEL_W, WIDTH, AXIS_H = 20, 210, 900, 22
PLOT_W = WIDTH - LABEL_W - 12
FAILED_ATTEMPTS = ("failed", "timed_out", "crashed")


def tick_step(span: float, most: int = 8) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten) giving at most ``most``
    ticks over ``span`` seconds."""
    raw = max(span, 1e-6) / most
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _tick_label(t: float, step: float) -> str:
    if step >= 60:
        return f"{t / 60:g} min"
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{t:.{decimals}f} s"


def row_label(execution: StepExecution, number: int) -> str:
    """The step, its item (an expanded or divided branch) and its attempt when it is a
    retry: ``PackParcel[3] try 2``."""
    name = execution.step or execution.node
    if execution.kind != "step":
        name = f"{name} ({execution.kind})"
    if execution.branch_index is not None:
        name = f"{name}[{execution.branch_index}]"
    return name if number == 1 else f"{name} try {number}"


def _rows(executions: Iterable[StepExecution]) -> list[tuple[StepExecution, Any]]:
    rows: list[tuple[StepExecution, Any]] = []
    for execution in executions:
        attempts = list(execution.attempts.all())
        rows += [(execution, attempt) for attempt in attempts]
        recorded = {attempt.number for attempt in attempts}
        # Attempt rows are written when attempts end: draw the current one from the
        # execution, once.
        if (
            execution.status == "running"
            and execution.started_at
            and execution.attempt not in recorded
        ):
            current = SimpleNamespace(
                number=execution.attempt,
                status="running",
                started_at=execution.started_at,
                finished_at=None,
                worker=execution.worker,
            )
            rows.append((execution, current))
    return rows


def render_timeline(
    executions: Iterable[StepExecution], origin: datetime, end: datetime
) -> SafeString:
    """One row per attempt of the given executions (their attempts must be prefetched),
    from ``origin`` (the run's creation) to ``end`` (its finish, or now). The pale part
    of a row is the wait before the attempt started: in the queue, or a retry's backoff."""
    rows = _rows(executions)
    if not rows:
        return mark_safe('<p class="muted">No attempts yet.</p>')
    run_span = max((end - origin).total_seconds(), 0.001)
    # A halt handler or a compensation may run after the run was stamped finished: the
    # axis goes on past the header's duration, which a line marks.
    last = max((a.finished_at or end) for _, a in rows)
    span = max(run_span, (last - origin).total_seconds())
    scale = PLOT_W / span
    parts = []
    previous_end: dict[int, datetime] = {}
    for i, (execution, attempt) in enumerate(rows):
        y = i * ROW_H
        waited_from = previous_end.get(execution.pk, execution.enqueued_at or execution.created_at)
        start = max((attempt.started_at - origin).total_seconds(), 0)
        wait_start = min(max((waited_from - origin).total_seconds(), 0), start)
        finish = attempt.finished_at or end
        length = max((finish - attempt.started_at).total_seconds(), 0)
        previous_end[execution.pk] = finish
        marker = ""
        if attempt.status in FAILED_ATTEMPTS:
            marker = "\u2715 " + attempt.status.replace("_", " ")
        bar_end = LABEL_W + (start + length) * scale
        # The mark goes right of its bar, or left of it when the bar ends near the edge.
        marker_x, anchor = bar_end + 4, "start"
        if bar_end + 80 > WIDTH:
            marker_x, anchor = LABEL_W + wait_start * scale - 4, "end"
        parts.append(
            format_html(
                '<g class="bar status-{}"><title>{}: {} after {}s waiting, ran {}s{}</title>'
                '<text class="label" x="0" y="{}">{}</text>'
                '<rect class="wait" x="{}" y="{}" width="{}" height="{}"/>'
                '<rect class="run" x="{}" y="{}" width="{}" height="{}" rx="2"/>'
                '<text class="marker" x="{}" y="{}" text-anchor="{}">{}</text></g>',
                attempt.status,
                row_label(execution, attempt.number),
                attempt.status,
                f"{start - wait_start:.3f}",
                f"{length:.3f}",
                f" on {attempt.worker}" if attempt.worker else "",
                y + 14,
                row_label(execution, attempt.number)[:30],
                f"{LABEL_W + wait_start * scale:.1f}",
                y + 8,
                f"{(start - wait_start) * scale:.1f}",
                4,
                f"{LABEL_W + start * scale:.1f}",
                y + 4,
                f"{max(length * scale, 2):.1f}",
                ROW_H - 8,
                f"{marker_x:.1f}",
                y + 14,
                anchor,
                marker,
            )
        )
    top = len(rows) * ROW_H + 4
    step = tick_step(span)
    ticks = []
    for n in range(int(span / step + 1e-9) + 1):
        x = LABEL_W + n * step * scale
        ticks.append(
            format_html(
                '<line class="tick" x1="{}" y1="0" x2="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{x:.1f}",
                f"{x:.1f}",
                top,
                f"{x:.1f}",
                top + 14,
                _tick_label(n * step, step),
            )
        )
    if span > run_span * 1.001:
        x = LABEL_W + run_span * scale
        ticks.append(
            format_html(
                '<line class="finish" x1="{}" y1="0" x2="{}" y2="{}"/>'
                '<text class="axis finish" x="{}" y="{}" text-anchor="end">run finished</text>',
                f"{x:.1f}",
                f"{x:.1f}",
                top,
                f"{x - 3:.1f}",
                top - 3,
            )
        )
    height = top + AXIS_H
    return mark_safe(  # noqa: S308 - parts are built with format_html
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" '
        f'aria-label="timeline of attempts over {span:.2f} s">'
        + "".join(ticks)
        + "".join(parts)
        + f'<text class="axis total" x="0" y="{top + 14}">run: {run_span:.2f} s</text></svg>'
    )
