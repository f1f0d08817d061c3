"""The definition language: an immutable builder with Ductwork's vocabulary.

``start(A).chain(B).divide([C, start(D).chain(E)]).combine(F)`` builds a :class:`Flow`.
Misplaced transitions raise :class:`DefinitionError` at the call that misplaced them, so the
traceback points at the line of the definition; whole-definition rules are checked when a
``Pipeline`` class is created (at import), and again by ``manage.py check``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from pipelines.exceptions import DefinitionError
from pipelines.step import Step

StepClass = type[Step]
Branch = Union[StepClass, "Flow"]


@dataclass(frozen=True)
class Op:
    kind: str  # start | chain | divide | combine | expand | collapse | divert | converge
    step: Any = None  # the step class for single-step ops
    branches: tuple[Flow, ...] = ()
    routes: tuple[tuple[str, Flow], ...] = ()
    otherwise: Flow | None = None


def _name(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)


def check_step_class(step: object, *, where: str) -> None:
    """Raise DefinitionError unless ``step`` is a usable Step subclass."""
    if not (isinstance(step, type) and issubclass(step, Step)):
        raise DefinitionError(
            f"{where}: {step!r} is not a Step subclass; pass the class itself "
            f"(class MyStep(pipelines.Step): def execute(self, payload): ...)"
        )
    step.validate_class()


def _as_flow(branch: object, *, where: str) -> Flow:
    if isinstance(branch, Flow):
        if branch.halt_handler is not None:
            raise DefinitionError(f"{where}: on_halt() belongs on the whole pipeline, not a branch")
        return branch
    check_step_class(branch, where=where)
    return start(branch)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Flow:
    """An immutable chain of transitions; every method returns a new Flow."""

    ops: tuple[Op, ...]
    halt_handler: Any = None

    def _then(self, op: Op) -> Flow:
        last = self.ops[-1].kind
        wanted = {"divide": "combine", "expand": "collapse"}.get(last)
        if wanted and op.kind != wanted:
            raise DefinitionError(
                f"{self._describe(-1)} must be followed by {wanted}(...), "
                f"got {op.kind}({_name(op.step) if op.step else '...'})"
            )
        if last == "divert" and op.kind not in ("converge",):
            added = Flow((op,))._describe(0)
            raise DefinitionError(
                f"{added} after {self._describe(-1)}: join the routes with converge(Step) "
                f"first, or end the pipeline there"
            )
        return Flow((*self.ops, op), self.halt_handler)

    def _describe(self, index: int) -> str:
        op = self.ops[index]
        if op.kind == "divide":
            return f"divide([{', '.join(_branch_name(b) for b in op.branches)}])"
        if op.kind == "divert":
            routes = ", ".join(f"{k!r}: {_branch_name(b)}" for k, b in op.routes)
            return f"divert({{{routes}}}, otherwise={_branch_name(op.otherwise)})"
        if op.kind == "expand":
            return f"expand({_branch_name(op.branches[0])})"
        return f"{op.kind}({_name(op.step)})"

    def chain(self, step: StepClass) -> Flow:
        """Run ``step`` next with the previous step's return value."""
        check_step_class(step, where=f"chain({_name(step)})")
        return self._then(Op("chain", step=step))

    def divide(self, branches: Sequence[Branch]) -> Flow:
        """Run every branch concurrently with the same payload; must be followed by combine."""
        if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
            raise DefinitionError(
                f"divide() takes a list of branches (step classes or start(...) sub-flows), "
                f"got {branches!r}"
            )
        if not branches:
            raise DefinitionError("divide([]) needs at least one branch")
        flows = tuple(
            _as_flow(b, where=f"divide() branch {i} ({_branch_name(b)})")
            for i, b in enumerate(branches)
        )
        return self._then(Op("divide", branches=flows))

    def _join(self, kind: str, step: StepClass, opener: str, verb: str, what: str) -> Flow:
        check_step_class(step, where=f"{kind}({_name(step)})")
        if self.ops[-1].kind != opener:
            raise DefinitionError(
                f"{kind}({_name(step)}) without {opener}(): {kind} {verb} the {what} of the "
                f"{opener}(...) right before it, but it follows {self._describe(-1)}"
            )
        return Flow((*self.ops, Op(kind, step=step)), self.halt_handler)

    def combine(self, step: StepClass) -> Flow:
        """Wait for every branch of the preceding divide; ``step`` gets their outputs as a
        list in the order the branches were declared."""
        return self._join("combine", step, "divide", "joins", "branches")

    def expand(self, step: Branch) -> Flow:
        """Run ``step`` (or a sub-flow) once per element of the previous step's list output;
        must be followed by collapse."""
        flow = _as_flow(step, where=f"expand({_branch_name(step)})")
        return self._then(Op("expand", branches=(flow,)))

    def collapse(self, step: StepClass) -> Flow:
        """Wait for every expanded element; ``step`` gets their outputs in element order."""
        return self._join("collapse", step, "expand", "gathers", "elements")

    def divert(self, routes: Mapping[str, Branch], *, otherwise: Branch | None = None) -> Flow:
        """Run exactly one route, chosen by the previous step's return value (a ``Route``,
        or a string equal to a key); ``otherwise`` runs when nothing matches."""
        if not isinstance(routes, Mapping) or not routes:
            raise DefinitionError(
                "divert() takes a non-empty dict of {route key: step class or sub-flow}"
            )
        if otherwise is None:
            raise DefinitionError(
                f"divert({{{', '.join(repr(k) for k in routes)}}}) without otherwise=: name the "
                f"step (or sub-flow) that runs when no route matches"
            )
        pairs = []
        for key, branch in routes.items():
            if not isinstance(key, str) or not 0 < len(key) <= 200:
                raise DefinitionError(
                    f"divert() route keys must be strings of 1 to 200 characters, got {key!r}"
                )
            if key == "otherwise":
                raise DefinitionError(
                    "divert() route key 'otherwise' is reserved for the fallback; pass that "
                    "branch as otherwise=... instead"
                )
            pairs.append((key, _as_flow(branch, where=f"divert() route {key!r}")))
        other = _as_flow(otherwise, where="divert(otherwise=...)")
        return self._then(Op("divert", routes=tuple(pairs), otherwise=other))

    def converge(self, step: StepClass) -> Flow:
        """Join the routes of the preceding divert; ``step`` gets the chosen route's output."""
        return self._join("converge", step, "divert", "joins", "routes")

    def on_halt(self, step: StepClass) -> Flow:
        """Run ``step`` once when the run fails (retries exhausted or halted)."""
        check_step_class(step, where=f"on_halt({_name(step)})")
        if self.halt_handler is not None:
            raise DefinitionError(
                f"on_halt({_name(step)}): this pipeline already has the halt handler "
                f"{_name(self.halt_handler)}"
            )
        return Flow(self.ops, step)


def _branch_name(branch: object) -> str:
    if isinstance(branch, Flow):
        if len(branch.ops) == 1:
            return _name(branch.ops[0].step)
        return "start(" + _name(branch.ops[0].step) + ")..."
    return _name(branch)


def start(step: StepClass) -> Flow:
    """Begin a definition (or a sub-flow used as a branch) with ``step``."""
    check_step_class(step, where=f"start({_name(step)})")
    return Flow((Op("start", step=step),))


# --- The compiled graph the engine walks -------------------------------------------------


@dataclass(frozen=True)
class End:
    """The flow ends here: the run succeeds, or the branch reports to its join."""


@dataclass(frozen=True)
class Chain:
    next: str


@dataclass(frozen=True)
class Divide:
    branches: tuple[str, ...]
    join: str


@dataclass(frozen=True)
class Expand:
    entry: str
    join: str


@dataclass(frozen=True)
class Divert:
    routes: tuple[tuple[str, str], ...]
    otherwise: str


Transition = End | Chain | Divide | Expand | Divert


@dataclass
class Node:
    id: str
    step: Any  # type[Step]
    transition: Transition = field(default_factory=End)
    label: str = ""  # how the node entered the graph: start, chain, combine, ...


@dataclass
class Graph:
    pipeline: str
    entry: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)
    halt: Node | None = None

    def add(self, step: Any, label: str) -> str:
        node_id = f"{step.__name__}.{len(self.nodes)}"
        self.nodes[node_id] = Node(node_id, step, End(), label)
        return node_id

    def node(self, node_id: str) -> Node:
        return self.halt if self.halt and node_id == self.halt.id else self.nodes[node_id]

    def find(self, node_id: str) -> Node | None:
        """The node (the halt handler included), or None when the graph has no such id."""
        return self.halt if self.halt and node_id == self.halt.id else self.nodes.get(node_id)

    def steps(self) -> list[Any]:
        found = [n.step for n in self.nodes.values()]
        return found + ([self.halt.step] if self.halt else [])


def compile_flow(flow: Flow, *, pipeline: str) -> Graph:
    """Turn a validated Flow into a Graph of nodes with one transition each."""
    if not isinstance(flow, Flow):
        raise DefinitionError(
            f"pipeline {pipeline}: definition must be built with start(...), got {flow!r}"
        )
    last = flow.ops[-1]
    if last.kind in ("divide", "expand"):
        wanted = "combine" if last.kind == "divide" else "collapse"
        raise DefinitionError(
            f"pipeline {pipeline}: {flow._describe(-1)} at the end of the definition must be "
            f"followed by {wanted}(Step)"
        )
    graph = Graph(pipeline)
    graph.entry, _exits = _compile(flow, graph, pipeline)  # exits keep End()
    if flow.halt_handler is not None:
        halt_id = f"{flow.halt_handler.__name__}.halt"
        graph.halt = Node(halt_id, flow.halt_handler, End(), "on_halt")
    return graph


def _compile(flow: Flow, graph: Graph, pipeline: str) -> tuple[str, list[str]]:
    if flow.ops[-1].kind in ("divide", "expand"):
        raise DefinitionError(
            f"pipeline {pipeline}: sub-flow {_branch_name(flow)} ends in {flow._describe(-1)}, "
            f"which must be followed by "
            f"{'combine' if flow.ops[-1].kind == 'divide' else 'collapse'}(Step)"
        )
    entry = ""
    exits: list[str] = []

    def link(transition: Transition) -> None:
        for node_id in exits:
            graph.nodes[node_id].transition = transition

    ops = flow.ops
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.kind in ("start", "chain"):
            node_id = graph.add(op.step, op.kind)
            link(Chain(node_id))
            exits = [node_id]
        elif op.kind in ("divide", "expand"):
            join_op = ops[i + 1]  # the builder guarantees combine/collapse follows
            entries = [_compile(branch, graph, pipeline)[0] for branch in op.branches]
            for entry_id in entries:
                graph.nodes[entry_id].label = "branch" if op.kind == "divide" else "each"
            join_id = graph.add(join_op.step, join_op.kind)
            if op.kind == "divide":
                link(Divide(tuple(entries), join_id))
            else:
                link(Expand(entries[0], join_id))
            exits = [join_id]
            i += 1
        elif op.kind == "divert":
            routes, route_exits = [], []
            for key, branch in op.routes:
                branch_entry, branch_exits = _compile(branch, graph, pipeline)
                graph.nodes[branch_entry].label = "route"
                routes.append((key, branch_entry))
                route_exits += branch_exits
            assert op.otherwise is not None
            other_entry, other_exits = _compile(op.otherwise, graph, pipeline)
            graph.nodes[other_entry].label = "otherwise"
            link(Divert(tuple(routes), other_entry))
            exits = route_exits + other_exits
            if i + 1 < len(ops) and ops[i + 1].kind == "converge":
                converge_id = graph.add(ops[i + 1].step, "converge")
                link(Chain(converge_id))
                exits = [converge_id]
                i += 1
        if op.kind == "start":
            entry = exits[0]
        i += 1
    return entry, exits


@dataclass(frozen=True)
class Route:
    """Return ``Route("key", payload)`` from the step before a divert to choose the route
    ``"key"`` and hand ``payload`` to it."""

    key: str
    payload: Any = None


@dataclass(frozen=True)
class WaitForEvent:
    """Return ``WaitForEvent("approved", timeout=3600)`` from a step to pause its run until
    ``run.send_event("approved", payload)``; the next step gets that payload. With a
    timeout (seconds), the step fails when no event arrives in time."""

    name: str
    timeout: float | None = None
