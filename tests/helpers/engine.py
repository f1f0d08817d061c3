"""Driving the engine's parts by hand in tests: a claim, a success commit."""

from __future__ import annotations

from typing import Any

from pipelines.context import StepContext
from pipelines.dsl import Graph
from pipelines.engine import plan
from pipelines.engine.outcome import Outcome
from pipelines.engine.store import get_store
from pipelines.models import StepExecution


def claim(execution_id: int, attempt: int, worker: str, job_id: str = "") -> StepExecution | None:
    return get_store().claim(execution_id, attempt, worker=worker, job_id=job_id)


def succeed(
    execution: StepExecution, attempt: int, graph: Graph, output: Any, context: StepContext
) -> str:
    """Commit a success with ``output`` as the runner would; returns the result."""
    decision = plan.for_execution(graph, execution, output)
    committed = get_store().commit_success(
        execution, attempt, Outcome(output, context), decision, graph
    )
    return str(committed.result)
