"""A run's definition: the compiled graph of its pipeline as it stood when the run was
triggered. Stored once per distinct graph (keyed by a hash of its structure), referenced
by each run, and read back to advance the run, so a deploy that changes a pipeline never
reroutes or breaks the runs already in flight.

The stored form names each step by its import path (``module:QualName``); a step's
policy (retries, timeout, queue) and its code are read from the class as deployed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Any

from pipelines import registry
from pipelines.dsl import Chain, Divert, Divide, End, Expand, Graph, Node, Transition
from pipelines.exceptions import MissingStepError, UnknownPipelineError
from pipelines.models import PipelineDefinition, PipelineRun

# Graphs by hash, per process: the current definitions (registered at import), and the
# older ones runs in flight still use (built from their rows on first use).
_graphs: dict[str, Graph] = {}
_hashes: dict[int, str] = {}  # id(graph) -> hash, for the graphs registered above


def _step_path(step: Any) -> str:
    return f"{step.__module__}:{step.__qualname__}"


def _transition(transition: Transition) -> dict[str, Any]:
    if isinstance(transition, Chain):
        return {"chain": transition.next}
    if isinstance(transition, Divide):
        return {"divide": list(transition.branches), "join": transition.join}
    if isinstance(transition, Expand):
        return {"expand": transition.entry, "join": transition.join}
    if isinstance(transition, Divert):
        return {"divert": [list(r) for r in transition.routes], "otherwise": transition.otherwise}
    return {}


def _node(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "step": _step_path(node.step),
        "label": node.label,
        "then": _transition(node.transition),
    }


def serialize(graph: Graph) -> dict[str, Any]:
    return {
        "pipeline": graph.pipeline,
        "entry": graph.entry,
        "nodes": [_node(node) for node in graph.nodes.values()],
        "halt": _node(graph.halt) if graph.halt else None,
    }


def digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def register(graph: Graph) -> str:
    """Remember a current definition; returns its hash (computed once per graph)."""
    key = _hashes.get(id(graph))
    if key is None or _graphs.get(key) is not graph:
        key = digest(serialize(graph))
        _graphs[key] = graph
        _hashes[id(graph)] = key
    return key


def current_hash(pipeline: str) -> str:
    return register(registry.get(pipeline).graph)


def save(pipeline: str) -> str:
    """Make sure the current definition of ``pipeline`` is stored; returns its hash. An
    insert that ignores a conflict: cheap, and right even after the table was emptied."""
    graph = registry.get(pipeline).graph
    key = register(graph)
    PipelineDefinition.objects.bulk_create(
        [PipelineDefinition(hash=key, pipeline=pipeline, graph=serialize(graph))],
        ignore_conflicts=True,
    )
    return key


def _import_step(path: str, *, where: str) -> Any:
    module_name, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise MissingStepError(
            f"{where}: step class {path} no longer exists ({type(exc).__name__}: {exc})"
        ) from None
    return found


def _rebuild_transition(then: dict[str, Any]) -> Transition:
    if "chain" in then:
        return Chain(then["chain"])
    if "divide" in then:
        return Divide(tuple(then["divide"]), then["join"])
    if "expand" in then:
        return Expand(then["expand"], then["join"])
    if "divert" in then:
        return Divert(tuple((k, v) for k, v in then["divert"]), then["otherwise"])
    return End()


def rebuild(document: dict[str, Any], *, where: str) -> Graph:
    """The graph a stored definition describes, with its step classes imported."""

    def node(data: dict[str, Any]) -> Node:
        step = _import_step(data["step"], where=where)
        return Node(data["id"], step, _rebuild_transition(data["then"]), data["label"])

    graph = Graph(document["pipeline"], document["entry"])
    for data in document["nodes"]:
        graph.nodes[data["id"]] = node(data)
    graph.halt = node(document["halt"]) if document["halt"] else None
    return graph


def graph_for(run: PipelineRun) -> Graph:
    """The graph ``run`` advances by. Raises MissingStepError when a step class of its
    definition is gone, UnknownPipelineError for a run from before definitions were
    stored whose pipeline is gone."""
    key = run.definition_id
    if key is None:  # triggered before runs kept their definition
        return registry.get(run.pipeline).graph
    graph = _graphs.get(key)
    if graph is None:
        document = PipelineDefinition.objects.values_list("graph", flat=True).get(pk=key)
        graph = _graphs[key] = rebuild(document, where=f"run {run.pk} (definition {key[:12]})")
    return graph


def graph_or_none(run: PipelineRun) -> Graph | None:
    try:
        return graph_for(run)
    except (MissingStepError, UnknownPipelineError):
        return None


def is_current(run: PipelineRun) -> bool | None:
    """Whether ``run`` uses its pipeline's current definition (None: unknown, for a run
    from before definitions were stored, or a pipeline that is gone)."""
    if run.definition_id is None:
        return None
    try:
        return current_hash(run.pipeline) == run.definition_id
    except UnknownPipelineError:
        return None
