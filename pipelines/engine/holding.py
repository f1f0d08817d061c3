"""Held steps: a step that succeeded after its run failed waits, held, for the run to be
resumed, so that its branch still reaches its join when it is."""

from __future__ import annotations

from django.db.models import QuerySet

from pipelines.lifecycle import RunStatus, StepKind, StepStatus
from pipelines.models import PipelineRun, StepExecution


def hold(run: PipelineRun, execution: StepExecution, route: str | None) -> None:
    """Mark a step that succeeded in a failed run (nothing follows it yet) so that
    resuming the run carries on from it. A compensated run cannot resume, so its steps
    are not held."""
    if (
        run.status == RunStatus.FAILED
        and execution.kind == StepKind.STEP
        and not StepExecution.objects.filter(run=run, kind=StepKind.COMPENSATION).exists()
    ):
        StepExecution.objects.filter(pk=execution.pk).update(held=True, route=route or "")


def held_steps(run: PipelineRun) -> QuerySet[StepExecution]:
    return StepExecution.objects.filter(
        run=run, kind=StepKind.STEP, status=StepStatus.SUCCEEDED, held=True
    ).select_related("run")


def release_held(execution: StepExecution) -> str | None:
    """Unmark a held step before what follows it is created; returns its divert key."""
    StepExecution.objects.filter(pk=execution.pk).update(held=False)
    return execution.route or None
