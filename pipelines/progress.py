"""A run's progress measured against its pipeline's graph (the definition it was
triggered with), not against the executions created so far: one node is one part of the
bar, whatever its fan-out, so every run of a pipeline has the same total."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.dsl import Graph
from pipelines.models import PipelineRun

# A node takes the first of these that any of its executions is in.
NODE_STATE_ORDER = ("failed", "cancelled", "running", "retrying", "waiting", "enqueued")
# Order of the bar's segments, left to right.
SEGMENTS = ("succeeded", "failed", "cancelled", "running", "waiting", "skipped")


@dataclass
class Progress:
    total: int
    parts: dict[str, int] = field(default_factory=dict)  # segment -> nodes

    @property
    def done(self) -> int:
        return self.parts.get("succeeded", 0)

    @property
    def segments(self) -> list[tuple[str, int, float]]:
        """(segment, nodes, percent of the bar) for the non-empty segments."""
        total = self.total or 1
        return [
            (name, self.parts[name], round(100 * self.parts[name] / total, 2))
            for name in SEGMENTS
            if self.parts.get(name)
        ]

    @property
    def pending(self) -> int:
        return self.total - sum(self.parts.values())


def _node_state(per_status: dict[str, int]) -> str:
    for status in NODE_STATE_ORDER:
        if per_status.get(status):
            return {"retrying": "running", "enqueued": "running"}.get(status, status)
    return "succeeded"


def of_run(run: PipelineRun, graph: Graph | None, counts: dict[str, dict[str, int]]) -> Progress:
    """``counts`` is {node: {status: executions}} (selectors.run_node_counts). A node no
    execution reached is pending while the run is active, and skipped once it has ended
    (a route not taken, or never reached after a failure or a cancel)."""
    nodes = list(graph.nodes) if graph is not None else [n for n in counts if ":" not in n]
    result = Progress(total=len(nodes))
    for node in nodes:
        if node in counts:
            state = _node_state(counts[node])
        elif run.is_finished:
            state = "skipped"
        else:
            continue
        result.parts[state] = result.parts.get(state, 0) + 1
    return result
