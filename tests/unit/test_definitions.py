"""Stored definitions: a graph survives the round trip through its stored form, and its
hash changes exactly when the graph does."""

from __future__ import annotations

import pytest

from pipelines import definitions
from pipelines.dsl import compile_flow, start
from pipelines.exceptions import MissingStepError
from tests.testapp import pipelines as p


@pytest.mark.parametrize(
    "pipeline",
    [
        p.ChainPipeline,
        p.DividePipeline,
        p.ExpandPipeline,
        p.DivertPipeline,
        p.NestedPipeline,
        p.FailingPipeline,
        p.SagaPipeline,
    ],
)
def test_a_stored_definition_rebuilds_the_same_graph(pipeline):
    document = definitions.serialize(pipeline.graph)
    rebuilt = definitions.rebuild(document, where="test")
    assert rebuilt == pipeline.graph
    assert definitions.digest(definitions.serialize(rebuilt)) == definitions.digest(document)


def test_the_hash_follows_the_graph():
    one = compile_flow(start(p.Add).chain(p.Double), pipeline="X")
    same = compile_flow(start(p.Add).chain(p.Double), pipeline="X")
    other = compile_flow(start(p.Double).chain(p.Add), pipeline="X")
    key = definitions.digest(definitions.serialize(one))
    assert key == definitions.digest(definitions.serialize(same))
    assert key != definitions.digest(definitions.serialize(other))
    assert len(key) == 64


def test_a_missing_step_class_is_named():
    document = definitions.serialize(p.ChainPipeline.graph)
    document["nodes"][1]["step"] = "tests.testapp.pipelines:Vanished"
    with pytest.raises(
        MissingStepError,
        match=r"run 7: step class tests\.testapp\.pipelines:Vanished no longer exists",
    ):
        definitions.rebuild(document, where="run 7")
