"""Pure unit tests of the definition language: every misuse raises DefinitionError with a
message naming what is wrong and where; valid definitions compile to the expected graph."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines import registry
from pipelines.dsl import Chain, Divert, Divide, End, Expand, Flow, start
from pipelines.exceptions import DefinitionError
from pipelines.pipeline import Pipeline
from pipelines.step import Step

# --- Step classes (module level, so their __qualname__ is just the class name) ----------


class Fetch(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Parse(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Left(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class RightA(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class RightB(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Merge(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Each(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Gather(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class RouteX(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class RouteY1(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class RouteY2(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Fallback(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class Join(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class OnHalt(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class OtherHalt(Step):
    def execute(self, payload: Any) -> Any:
        return payload


# --- Fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[dict[str, Any]]:
    """Pipelines register globally at class creation: undo whatever a test registered."""
    before = dict(registry._pipelines)
    yield before
    for name in set(registry._pipelines) - set(before):
        registry.unregister(name)
    registry._pipelines.clear()
    registry._pipelines.update(before)


def unique(label: str) -> str:
    return f"test-dsl-{label}-{uuid.uuid4().hex[:8]}"


def raises(message: str) -> Any:
    """pytest.raises(DefinitionError) matching ``message`` literally."""
    return pytest.raises(DefinitionError, match=re.escape(message))


# --- Misplaced transitions ---------------------------------------------------------------


def test_combine_without_divide() -> None:
    with raises("combine(Merge) without divide(): combine joins the branches of the divide"):
        start(Fetch).combine(Merge)
    with raises("but it follows chain(Parse)"):
        start(Fetch).chain(Parse).combine(Merge)


def test_collapse_without_expand() -> None:
    with raises(
        "collapse(Gather) without expand(): collapse gathers the elements of the expand(...) "
        "right before it, but it follows start(Fetch)"
    ):
        start(Fetch).collapse(Gather)


def test_converge_without_divert() -> None:
    with raises(
        "converge(Join) without divert(): converge joins the routes of the divert(...) "
        "right before it, but it follows chain(Parse)"
    ):
        start(Fetch).chain(Parse).converge(Join)


def test_divert_without_otherwise() -> None:
    with raises(
        "divert({'x', 'y'}) without otherwise=: name the step (or sub-flow) that runs when no "
        "route matches"
    ):
        start(Fetch).divert({"x": RouteX, "y": RouteY1})


def test_divert_with_empty_dict() -> None:
    with raises("divert() takes a non-empty dict of {route key: step class or sub-flow}"):
        start(Fetch).divert({}, otherwise=Fallback)


def test_divert_with_non_string_key() -> None:
    with raises("divert() route keys must be strings of 1 to 200 characters, got 1"):
        start(Fetch).divert({1: RouteX}, otherwise=Fallback)  # type: ignore[dict-item]
    with raises("divert() route keys must be strings of 1 to 200 characters, got ''"):
        start(Fetch).divert({"": RouteX}, otherwise=Fallback)


def test_divide_empty_list() -> None:
    with raises("divide([]) needs at least one branch"):
        start(Fetch).divide([])


def test_divide_given_a_non_list() -> None:
    with pytest.raises(
        DefinitionError,
        match=r"divide\(\) takes a list of branches \(step classes or start\(\.\.\.\) "
        r"sub-flows\), got <class '[\w.]*Left'>",
    ):
        start(Fetch).divide(Left)  # type: ignore[arg-type]
    with raises("divide() takes a list of branches"):
        start(Fetch).divide("Left")  # type: ignore[arg-type]


def test_divide_must_be_followed_by_combine() -> None:
    with raises(
        "divide([Left, start(RightA)...]) must be followed by combine(...), got chain(Parse)"
    ):
        start(Fetch).divide([Left, start(RightA).chain(RightB)]).chain(Parse)


def test_expand_must_be_followed_by_collapse() -> None:
    with raises("must be followed by collapse(...), got chain(Parse)"):
        start(Fetch).expand(Each).chain(Parse)


def test_expand_messages_name_the_expanded_step() -> None:
    with raises("expand(Each) must be followed by collapse(...), got chain(Parse)"):
        start(Fetch).expand(Each).chain(Parse)
    with raises("but it follows expand(Each)"):
        start(Fetch).expand(Each).combine(Merge)
    pipeline_name = unique("ends-in-expand")
    with raises(f"pipeline {pipeline_name}: expand(Each) at the end of the definition"):

        class EndsInExpand(Pipeline):
            name = pipeline_name
            definition = start(Fetch).expand(Each)


def test_definition_ending_in_divide_fails_at_class_creation() -> None:
    pipeline_name = unique("ends-in-divide")
    flow = start(Fetch).divide([Left, RightA])  # the builder alone accepts this...
    with raises(
        f"pipeline {pipeline_name}: divide([Left, RightA]) at the end of "
        f"the definition must be followed by combine(Step)"
    ):

        class EndsInDivide(Pipeline):  # ...creating the Pipeline class does not
            name = pipeline_name
            definition = flow

    assert pipeline_name not in registry._pipelines


def test_definition_ending_in_expand_fails_at_class_creation() -> None:
    pipeline_name = unique("ends-in-expand")
    with pytest.raises(
        DefinitionError,
        match=re.escape(f"pipeline {pipeline_name}: expand(")
        + r".*\) at the end of the definition must be followed by collapse\(Step\)",
    ):

        class EndsInExpand(Pipeline):
            name = pipeline_name
            definition = start(Fetch).expand(Each)

    assert pipeline_name not in registry._pipelines


def test_sub_flow_branch_ending_in_expand() -> None:
    pipeline_name = unique("branch-ends-in-expand")
    branch = start(RightA).expand(Each)
    with pytest.raises(
        DefinitionError,
        match=re.escape(
            f"pipeline {pipeline_name}: sub-flow start(RightA)... ends in expand(Each), "
            "which must be followed by collapse(Step)"
        ),
    ):

        class BranchEndsInExpand(Pipeline):
            name = pipeline_name
            definition = start(Fetch).divide([Left, branch]).combine(Merge)

    assert pipeline_name not in registry._pipelines


def test_chain_after_divert_without_converge() -> None:
    with raises(
        "chain(Parse) after divert({'x': RouteX}, otherwise=Fallback): join the routes with "
        "converge(Step) "
        "first, or end the pipeline there"
    ):
        start(Fetch).divert({"x": RouteX}, otherwise=Fallback).chain(Parse)


# --- Step classes ------------------------------------------------------------------------


def test_step_without_execute() -> None:
    class NoExecute(Step):
        pass

    with raises(f"step {NoExecute.__qualname__} has no execute(self, payload) method"):
        start(NoExecute)
    with raises("has no execute(self, payload) method"):
        start(Fetch).chain(NoExecute)


@pytest.mark.parametrize("arity", ["none", "two", "keyword-only"])
def test_execute_with_wrong_signature(arity: str) -> None:
    class NoPayload(Step):
        def execute(self) -> None:  # type: ignore[override]
            return None

    class TwoArgs(Step):
        def execute(self, payload: Any, extra: Any) -> None:  # type: ignore[override]
            return None

    class KeywordOnly(Step):
        def execute(self, *, payload: Any) -> None:  # type: ignore[override]
            return None

    bad = {"none": NoPayload, "two": TwoArgs, "keyword-only": KeywordOnly}[arity]
    with raises(
        f"step {bad.__qualname__}: execute must take exactly one argument besides self, the "
        f"payload: def execute(self, payload)"
    ):
        start(Fetch).chain(bad)


def not_a_step(payload: Any) -> Any:
    return payload


class PlainClass:
    def execute(self, payload: Any) -> Any:
        return payload


@pytest.mark.parametrize(
    ("make_bad", "where"),
    [
        (lambda: not_a_step, "chain(not_a_step): <function not_a_step at "),
        (
            lambda: Fetch(context=None, run=None, attempt=1, idempotency_key="k"),  # type: ignore[arg-type]
            f"chain(<{__name__}.Fetch object at ",
        ),
        (lambda: PlainClass, f"chain(PlainClass): <class '{__name__}.PlainClass'>"),
    ],
    ids=["function", "instance", "plain-class"],
)
def test_not_a_step_subclass(make_bad: Any, where: str) -> None:
    bad = make_bad()
    with pytest.raises(DefinitionError) as info:
        start(Fetch).chain(bad)
    message = str(info.value)
    assert message.startswith(where)
    assert message.endswith(
        f": {bad!r} is not a Step subclass; pass the class itself "
        f"(class MyStep(pipelines.Step): def execute(self, payload): ...)"
    )
    with raises(f"start(PlainClass): {PlainClass!r} is not a Step subclass"):
        start(PlainClass)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [
        ("retries", -1, "retries must be an int >= 0, got -1"),
        ("retries", True, "retries must be an int >= 0, got True"),
        ("retries", "3", "retries must be an int >= 0, got '3'"),
        ("timeout", 0, "timeout must be a positive number of seconds"),
        ("timeout", -5, "timeout must be an int >= 0, got -5"),
        ("retry_backoff", -0.5, "retry_backoff must be a number >= 0, got -0.5"),
        ("retry_backoff_max", -1, "retry_backoff_max must be a number >= 0, got -1"),
        ("queue", "", "queue must be a queue name, got ''"),
    ],
)
def test_bad_step_policy(attr: str, value: Any, message: str) -> None:
    bad = type("BadPolicy", (Fetch,), {attr: value})
    with raises(f"step BadPolicy: {message}"):
        start(bad)


def test_good_step_policy_is_accepted() -> None:
    good = type(
        "GoodPolicy",
        (Fetch,),
        {"retries": 0, "timeout": 5, "retry_backoff": 0, "retry_backoff_max": 1.5, "queue": "q"},
    )
    flow = start(good)
    assert flow.ops[0].step is good


def test_bad_retry_jitter_is_refused() -> None:
    bad = type("BadJitter", (Fetch,), {"retry_jitter": "no"})
    with raises("step BadJitter: retry_jitter"):
        start(bad)


# --- on_halt -------------------------------------------------------------------------------


def test_on_halt_twice() -> None:
    with raises("on_halt(OtherHalt): this pipeline already has the halt handler OnHalt"):
        start(Fetch).on_halt(OnHalt).chain(Parse).on_halt(OtherHalt)


def test_on_halt_on_a_sub_flow_used_as_branch() -> None:
    branch = start(RightA).chain(RightB).on_halt(OnHalt)
    with raises(
        "divide() branch 1 (start(RightA)...): on_halt() belongs on the whole pipeline, "
        "not a branch"
    ):
        start(Fetch).divide([Left, branch])
    with raises("divert() route 'x': on_halt() belongs on the whole pipeline"):
        start(Fetch).divert({"x": branch}, otherwise=Fallback)
    with raises("divert(otherwise=...): on_halt() belongs on the whole pipeline"):
        start(Fetch).divert({"x": RouteX}, otherwise=branch)
    with raises("expand(start(RightA)...): on_halt() belongs on the whole pipeline"):
        start(Fetch).expand(branch)


# --- Pipeline classes --------------------------------------------------------------------


def test_pipeline_without_definition() -> None:
    with pytest.raises(
        DefinitionError,
        match=r"pipeline [\w.<>]*NoDefinition has no definition; set definition = "
        r"start\(FirstStep\)\.chain\(\.\.\.\), or abstract = True",
    ):

        class NoDefinition(Pipeline):
            name = unique("no-definition")


def test_definition_not_built_with_start() -> None:
    pipeline_name = unique("list-definition")
    with raises(f"pipeline {pipeline_name}: definition must be built with start(...), got [<class"):

        class ListDefinition(Pipeline):
            name = pipeline_name
            definition = [Fetch, Parse]  # type: ignore[assignment]

    assert pipeline_name not in registry._pipelines


def test_bad_pipeline_name() -> None:
    with pytest.raises(
        DefinitionError, match=r"pipeline [\w.<>]*EmptyName: name must be a short string"
    ):

        class EmptyName(Pipeline):
            name = ""
            definition = start(Fetch)


def test_duplicate_pipeline_name() -> None:
    pipeline_name = unique("duplicate")

    class First(Pipeline):
        name = pipeline_name
        definition = start(Fetch)

    assert registry.get(pipeline_name) is First
    with pytest.raises(
        DefinitionError,
        match=re.escape(f"duplicate pipeline name {pipeline_name!r}: ")
        + r"[\w.<>]+\.Second and [\w.<>]+\.First; set name = '\.\.\.' on one of them",
    ):

        class Second(Pipeline):
            name = pipeline_name
            definition = start(Parse)

    assert registry.get(pipeline_name) is First


# --- Positive: the compiled graph ----------------------------------------------------------


def make_pipeline(label: str, definition: Flow, **attrs: Any) -> type[Pipeline]:
    name = unique(label)
    cls: type[Pipeline] = type(
        label, (Pipeline,), {"name": name, "definition": definition, **attrs}
    )
    assert registry.get(name) is cls
    return cls


def test_graph_of_every_transition() -> None:
    definition = (
        start(Fetch)
        .chain(Parse)
        .divide([Left, start(RightA).chain(RightB)])
        .combine(Merge)
        .expand(Each)
        .collapse(Gather)
        .divert({"x": RouteX, "y": start(RouteY1).chain(RouteY2)}, otherwise=Fallback)
        .converge(Join)
        .on_halt(OnHalt)
    )
    graph = make_pipeline("EveryTransition", definition).graph

    assert graph.entry == "Fetch.0"
    assert {node_id: node.transition for node_id, node in graph.nodes.items()} == {
        "Fetch.0": Chain("Parse.1"),
        "Parse.1": Divide(("Left.2", "RightA.3"), "Merge.5"),
        "Left.2": End(),
        "RightA.3": Chain("RightB.4"),
        "RightB.4": End(),
        "Merge.5": Expand("Each.6", "Gather.7"),
        "Each.6": End(),
        "Gather.7": Divert((("x", "RouteX.8"), ("y", "RouteY1.9")), "Fallback.11"),
        "RouteX.8": Chain("Join.12"),
        "RouteY1.9": Chain("RouteY2.10"),
        "RouteY2.10": Chain("Join.12"),
        "Fallback.11": Chain("Join.12"),
        "Join.12": End(),
    }
    assert [graph.nodes[n].label for n in ("Fetch.0", "Parse.1", "Merge.5", "Gather.7")] == [
        "start",
        "chain",
        "combine",
        "collapse",
    ]
    assert graph.nodes["Join.12"].label == "converge"
    assert graph.nodes["Join.12"].step is Join
    assert graph.halt is not None
    assert (graph.halt.id, graph.halt.step, graph.halt.label) == ("OnHalt.halt", OnHalt, "on_halt")
    assert graph.halt.transition == End()
    assert graph.node("OnHalt.halt") is graph.halt
    assert graph.steps()[-1] is OnHalt
    assert len(graph.steps()) == 14


def test_sub_flow_branch_exits_end() -> None:
    definition = (
        start(Fetch).divide([start(RightA).chain(RightB), start(Each).chain(Parse)]).combine(Merge)
    )
    graph = make_pipeline("SubFlowBranches", definition).graph
    divide = graph.nodes["Fetch.0"].transition
    assert divide == Divide(("RightA.1", "Each.3"), "Merge.5")
    # Each branch's last node reports to the join (End), not Chain to the combine step.
    assert graph.nodes["RightB.2"].transition == End()
    assert graph.nodes["Parse.4"].transition == End()
    assert graph.nodes["RightA.1"].transition == Chain("RightB.2")
    assert graph.nodes["Merge.5"].transition == End()


def test_expand_sub_flow_exits_end() -> None:
    definition = start(Fetch).expand(start(Each).chain(Parse)).collapse(Gather).chain(Join)
    graph = make_pipeline("ExpandSubFlow", definition).graph
    assert graph.nodes["Fetch.0"].transition == Expand("Each.1", "Gather.3")
    assert graph.nodes["Each.1"].transition == Chain("Parse.2")
    assert graph.nodes["Parse.2"].transition == End()
    assert graph.nodes["Gather.3"].transition == Chain("Join.4")


def test_divert_route_exits_chain_to_converge() -> None:
    definition = (
        start(Fetch)
        .divert(
            {"x": start(RouteX).chain(Parse), "y": RouteY1},
            otherwise=start(Fallback).chain(RouteY2),
        )
        .converge(Join)
    )
    graph = make_pipeline("DivertConverge", definition).graph
    assert graph.nodes["Fetch.0"].transition == Divert(
        (("x", "RouteX.1"), ("y", "RouteY1.3")), "Fallback.4"
    )
    assert graph.nodes["RouteX.1"].transition == Chain("Parse.2")
    for last in ("Parse.2", "RouteY1.3", "RouteY2.5"):
        assert graph.nodes[last].transition == Chain("Join.6")
    assert graph.nodes["Join.6"].transition == End()


def test_divert_without_converge_ends_every_route() -> None:
    definition = start(Fetch).divert({"x": start(RouteX).chain(Parse)}, otherwise=Fallback)
    graph = make_pipeline("DivertEnd", definition).graph
    assert graph.nodes["Fetch.0"].transition == Divert((("x", "RouteX.1"),), "Fallback.3")
    assert graph.nodes["Parse.2"].transition == End()
    assert graph.nodes["Fallback.3"].transition == End()


def test_abstract_pipelines_are_not_registered() -> None:
    before = set(registry._pipelines)

    class AbstractBase(Pipeline):
        abstract = True
        name = unique("abstract")
        definition = start(Fetch)

    assert set(registry._pipelines) == before
    assert not hasattr(AbstractBase, "graph")

    concrete_name = unique("concrete")

    class Concrete(AbstractBase):
        name = concrete_name
        definition = start(Fetch)

    assert registry.get(concrete_name) is Concrete
    assert Concrete.abstract is False
    assert AbstractBase.abstract is True
    assert set(registry._pipelines) == before | {concrete_name}


def test_builders_are_immutable() -> None:
    base = start(Fetch)
    one = base.chain(Parse)
    two = base.chain(Merge)
    assert [op.step for op in base.ops] == [Fetch]
    assert [op.step for op in one.ops] == [Fetch, Parse]
    assert [op.step for op in two.ops] == [Fetch, Merge]
    assert one != two

    halted = one.on_halt(OnHalt)
    assert halted.halt_handler is OnHalt
    assert one.halt_handler is None
    assert halted.ops == one.ops

    # The same prefix can still be extended into a divide after being chained.
    divided = base.divide([Left])
    assert [op.kind for op in base.ops] == ["start"]
    assert [op.kind for op in divided.ops] == ["start", "divide"]

    with pytest.raises(dataclasses.FrozenInstanceError):
        base.ops = ()  # type: ignore[misc]


def test_divert_route_key_otherwise_is_reserved() -> None:
    with raises("divert() route key 'otherwise' is reserved for the fallback"):
        start(Fetch).divert({"otherwise": RouteX}, otherwise=Fallback)


def test_divert_route_key_longer_than_200_characters_is_refused() -> None:
    with raises("divert() route keys must be strings of 1 to 200 characters"):
        start(Fetch).divert({"k" * 201: RouteX}, otherwise=Fallback)
