"""Halting a run and undoing its work: the halt handler, compensations, and what a step
that failed for good (or succeeded too late) sets off. The caller holds the run's lock."""

from __future__ import annotations

from pipelines.dsl import Graph
from pipelines.engine import rows
from pipelines.engine.delivery import delivery, enqueue_on_commit
from pipelines.engine.plan import final_failure_reason
from pipelines.engine.transitions import run_transition
from pipelines.lifecycle import ACTIVE_RUN_STATUSES, RunStatus, StepKind, StepStatus
from pipelines.models import PipelineRun, StepExecution


def halt_run(run: PipelineRun, graph: Graph | None, reason: str, *, failed_node: str) -> None:
    """Fail the run, start its halt handler and its compensations, once: the status
    transition is guarded, so a second halt of the same run raises instead."""
    run_transition(run, RunStatus.FAILED, error=reason)
    if graph is None:
        return
    if graph.halt is not None:
        payload = {"run_id": run.pk, "pipeline": run.pipeline, "step": failed_node, "error": reason}
        handler = rows.new_execution(run, graph, graph.halt.id, payload, kind=StepKind.HALT)
        rows.insert([handler])
        enqueue_on_commit([delivery(handler, graph)])
    start_next_compensation(run, graph)


def after_final_failure(
    run: PipelineRun, graph: Graph | None, execution: StepExecution, error: str, attempt: int
) -> None:
    """An execution failed for good: halt its run, or carry on with the compensations."""
    if execution.kind == StepKind.COMPENSATION:
        note = f"compensation of {execution.node} failed: {error}"
        PipelineRun.objects.filter(pk=run.pk).update(error=f"{run.error}\n{note}".strip())
        start_next_compensation(run, graph)
        return
    if execution.kind == StepKind.STEP and run.status in ACTIVE_RUN_STATUSES:
        reason = final_failure_reason(execution.node, attempt, error)
        halt_run(run, graph, reason, failed_node=execution.node)


def _compensable(graph: Graph, node_id: str) -> bool:
    node = graph.find(node_id)
    return node is not None and node.step.has_compensation()


def start_next_compensation(run: PipelineRun, graph: Graph | None) -> None:
    """Compensations run one at a time, in reverse completion order: the next one is the
    latest-finished succeeded step that can be undone and has not been yet."""
    if graph is None:
        return
    done = StepExecution.objects.filter(run=run, kind=StepKind.COMPENSATION).values(
        "compensates_id"
    )
    candidates = (
        StepExecution.objects.filter(run=run, kind=StepKind.STEP, status=StepStatus.SUCCEEDED)
        .exclude(pk__in=done)
        .order_by("-finished_at", "-id")
        .only("id", "node", "output", "run_id")
    )
    for candidate in candidates:
        if _compensable(graph, candidate.node):
            _create_compensation(run, graph, candidate)
            return


def compensate_late(run: PipelineRun, graph: Graph, execution: StepExecution) -> bool:
    """A step that finished after its run ended is undone at once (if it can be), next
    to any compensations already under way. Returns whether it will be."""
    if _compensable(graph, execution.node):
        _create_compensation(run, graph, execution)
        return True
    return False


def _create_compensation(run: PipelineRun, graph: Graph, original: StepExecution) -> None:
    compensation = rows.new_execution(
        run, graph, original.node, original.output, kind=StepKind.COMPENSATION
    )
    compensation.compensates_id = original.pk
    rows.insert([compensation])
    enqueue_on_commit([delivery(compensation, graph)])
