"""Figures for the dashboard's overview: a fixed number of grouped queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from pipelines import registry
from pipelines.models import PipelineRun, RunStatus, StepExecution, StepStatus

# Durations are estimated from this many of the most recent finished steps.
DURATION_SAMPLE = 5000


@dataclass
class PipelineStats:
    name: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    registered: bool = True

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return round(100 * self.succeeded / finished, 1) if finished else None


@dataclass
class Overview:
    by_status: dict[str, int]
    recent_failures: list[PipelineRun]
    throughput: list[tuple[Any, int]]  # (minute, runs finished) over the last hour
    finished_last_hour: int
    pipelines: list[PipelineStats] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)


def overview() -> Overview:
    now = timezone.now()
    by_status = {status: 0 for status in RunStatus.values}
    failures = list(
        PipelineRun.objects.filter(status=RunStatus.FAILED)
        .only("id", "pipeline", "error", "finished_at", "status")
        .order_by("-finished_at")[:5]
    )
    hour_ago = now - timedelta(hours=1)
    per_minute = dict(
        PipelineRun.objects.filter(finished_at__gte=hour_ago)
        .annotate(minute=TruncMinute("finished_at"))
        .values_list("minute")
        .annotate(n=Count("id"))
        .order_by()
    )
    start = hour_ago.replace(second=0, microsecond=0) + timedelta(minutes=1)
    throughput = [
        (start + timedelta(minutes=i), per_minute.get(start + timedelta(minutes=i), 0))
        for i in range(60)
    ]
    stats: dict[str, PipelineStats] = {
        p.name: PipelineStats(p.name) for p in registry.all_pipelines()
    }
    rows = PipelineRun.objects.values_list("pipeline", "status").annotate(n=Count("id")).order_by()
    for name, status, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        entry = stats.setdefault(name, PipelineStats(name, registered=False))
        entry.runs += n
        if status == RunStatus.SUCCEEDED:
            entry.succeeded += n
        elif status == RunStatus.FAILED:
            entry.failed += n
    durations: dict[str, list[float]] = {}
    recent = (
        StepExecution.objects.filter(status=StepStatus.SUCCEEDED, kind="step")
        .exclude(started_at=None)
        .order_by("-finished_at")
        .values_list("run__pipeline", "started_at", "finished_at")[:DURATION_SAMPLE]
    )
    for name, started, finished in recent:
        if started and finished:
            durations.setdefault(name, []).append((finished - started).total_seconds() * 1000)
    for name, values in durations.items():
        if name in stats:
            stats[name].p50_ms = _percentile(values, 0.5)
            stats[name].p95_ms = _percentile(values, 0.95)
    return Overview(
        by_status=by_status,
        recent_failures=failures,
        throughput=throughput,
        finished_last_hour=sum(n for _, n in throughput),
        pipelines=sorted(stats.values(), key=lambda s: s.name),
    )
