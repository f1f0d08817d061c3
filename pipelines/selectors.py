"""Reads for commands, the admin and the dashboard. Each is a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from pipelines.models import ContextWrite, PipelineRun, StepAttempt, StepExecution


def run_get(*, run_id: int) -> PipelineRun:
    return PipelineRun.objects.get(pk=run_id)


def run_steps(*, run_id: int) -> QuerySet[StepExecution]:
    """The run's step executions in creation order, each with its attempts prefetched."""
    return StepExecution.objects.filter(run_id=run_id).prefetch_related(
        Prefetch("attempts", queryset=StepAttempt.objects.order_by("number"))
    )


def run_context_history(*, run_id: int) -> QuerySet[ContextWrite]:
    return ContextWrite.objects.filter(run_id=run_id).order_by("id")


@dataclass(frozen=True)
class ContextEntry:
    key: str
    value: Any
    writer: str
    overwritten: int  # how many earlier values this key had


def run_context_entries(*, run_id: int) -> list[ContextEntry]:
    """Each key's current value and who wrote it, from the history (one query)."""
    latest: dict[str, ContextWrite] = {}
    counts: dict[str, int] = {}
    for write in run_context_history(run_id=run_id):
        latest[write.key] = write
        counts[write.key] = counts.get(write.key, 0) + 1
    return [
        ContextEntry(key, w.value, w.writer(), counts[key] - 1) for key, w in sorted(latest.items())
    ]
