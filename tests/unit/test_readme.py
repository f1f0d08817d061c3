"""The README's tutorial is real code: it must define a valid pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines import registry
from pipelines.dsl import Chain, Divert, Divide, End, Expand

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def tutorial_namespace():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    source = next(b for b in blocks if "class ShipOrder(Pipeline)" in b)
    namespace: dict = {"charge_card": lambda order, idempotency_key: idempotency_key}
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - our own README
    yield namespace
    registry.unregister("ShipOrder")


def test_tutorial_pipeline_compiles_with_every_transition(tutorial_namespace):
    graph = tutorial_namespace["ShipOrder"].graph
    kinds = [type(node.transition) for node in graph.nodes.values()]

    assert graph.entry == "ValidateOrder.0"
    assert {Chain, Divide, Expand, Divert, End} <= set(kinds)
    assert graph.halt is not None
    assert graph.halt.step.__name__ == "AlertOps"
    assert [n.step.__name__ for n in graph.nodes.values()] == [
        "ValidateOrder",
        "ChargeCard",
        "ReserveStock",
        "HoldStock",
        "PlanParcels",
        "PackParcel",
        "ChooseCarrier",
        "Express",
        "Standard",
        "Notify",
    ]
