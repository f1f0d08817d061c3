"""The engine's decisions, as tables: pure code, no database."""

from __future__ import annotations

import random

import pytest

from pipelines import Route, Step, WaitForEvent, start
from pipelines.conf import get_settings
from pipelines.dsl import compile_flow
from pipelines.engine import plan
from pipelines.step import RetryPolicy


class A(Step):
    def execute(self, payload):
        return payload


class B(A):
    pass


class C(A):
    pass


class J(A):
    pass


def graph_of(flow):
    return compile_flow(flow, pipeline="plan-test")


CHAIN = graph_of(start(A).chain(B))
DIVIDE = graph_of(start(A).divide([B, C]).combine(J))
EXPAND = graph_of(start(A).expand(B).collapse(J))
DIVERT = graph_of(start(A).divert({"x": B}, otherwise=C).converge(J))


def decide(graph, node, output, route=None, *, in_branch=False, wait=None, kind="step", **conf):
    settings = get_settings()
    settings = type(settings)(**{**vars(settings), **conf})
    return plan.after_success(
        graph, node, output, route, kind=kind, wait=wait, in_branch=in_branch, conf=settings
    )


@pytest.mark.parametrize(
    ("graph", "node", "output", "route", "in_branch", "expected"),
    [
        (CHAIN, "A.0", 1, None, False, plan.Next("B.1", 1)),
        (CHAIN, "B.1", 2, None, False, plan.Finish(2)),
        (CHAIN, "B.1", 2, None, True, plan.Arrive()),
        (DIVIDE, "A.0", 5, None, False, plan.Fork("J.3", (("B.1", 5), ("C.2", 5)))),
        (EXPAND, "A.0", [7, 8], None, False, plan.Fork("J.2", (("B.1", 7), ("B.1", 8)))),
        (EXPAND, "A.0", [], None, False, plan.Next("J.2", [])),
        (DIVERT, "A.0", "x", None, False, plan.Next("B.1", "x", route="x")),
        (DIVERT, "A.0", "p", "x", False, plan.Next("B.1", "p", route="x")),
        (DIVERT, "A.0", "y", None, False, plan.Next("C.2", "y", route="otherwise")),
        (DIVERT, "A.0", {"x": 1}, None, False, plan.Next("C.2", {"x": 1}, route="otherwise")),
        (DIVERT, "B.1", 3, None, False, plan.Next("J.3", 3)),
    ],
)
def test_what_follows_a_success(graph, node, output, route, in_branch, expected):
    assert decide(graph, node, output, route, in_branch=in_branch) == expected


def test_an_expand_over_the_limit_halts():
    decision = decide(EXPAND, "A.0", [0] * 4, max_expand=3)
    assert decision == plan.Halt(
        "step A.0 returned 4 elements to expand, over the limit of 3 (PIPELINES_MAX_EXPAND)"
    )


@pytest.mark.parametrize(
    ("kind", "wait", "expected"),
    [
        ("compensation", None, plan.NextCompensation()),
        ("halt", None, plan.Nothing()),
        ("step", WaitForEvent("ok", 5), plan.Pause("ok", 5)),
    ],
)
def test_kinds_and_waits(kind, wait, expected):
    assert decide(CHAIN, "A.0", None, kind=kind, wait=wait) == expected


@pytest.mark.parametrize(
    ("items", "batch", "eager", "size"),
    [
        (5, 10, 20, 1),
        (127, 10, 20, 1),
        (128, 10, 20, 2),
        (640, 10, 20, 10),
        (10_000, 10, 20, 10),
        (10_000, 10, 1, 1),
        (10_000, 1, 20, 1),
    ],
)
def test_expand_batch_sizes(items, batch, eager, size):
    assert plan.BatchPolicy(batch, eager).size(items) == size


def test_a_big_expand_carries_its_batch_size():
    decision = decide(EXPAND, "A.0", list(range(640)), max_expand=1000)
    assert isinstance(decision, plan.Fork)
    assert decision.batch_size == 10


@pytest.mark.parametrize(
    ("arrived", "expected", "fired", "complete"),
    [(1, 3, False, False), (3, 3, False, True), (3, 3, True, False), (4, 3, False, True)],
)
def test_a_barrier_fires_once_when_complete(arrived, expected, fired, complete):
    assert plan.barrier_complete(arrived, expected, fired) is complete


def test_a_join_orders_outputs_by_branch_and_halts_when_too_big(settings):
    assert plan.join("J.3", 3, {2: "c", 0: "a", 1: "b"}) == plan.Join("J.3", ["a", "b", "c"])
    settings.PIPELINES_MAX_VALUE_BYTES = 20
    halted = plan.join("J.3", 2, {0: "x" * 12, 1: "y" * 12})
    assert isinstance(halted, plan.Halt)
    assert "joined outputs for J.3" in halted.reason


POLICY = RetryPolicy(retries=2, backoff=1.0, backoff_max=3.0, jitter=False)


@pytest.mark.parametrize(
    ("policy", "attempt", "may_retry", "expected"),
    [
        (POLICY, 1, True, plan.Retry(2, 1.0)),
        (POLICY, 2, True, plan.Retry(3, 2.0)),
        (POLICY, 3, True, plan.GiveUp()),
        (POLICY, 1, False, plan.GiveUp()),  # the run ended
        (None, 1, True, plan.GiveUp()),  # not retryable
        (RetryPolicy(5, 1.0, 3.0, False), 4, True, plan.Retry(5, 3.0)),  # capped
    ],
)
def test_what_follows_a_failure(policy, attempt, may_retry, expected):
    assert plan.after_failure(policy, attempt, may_retry=may_retry) == expected


def test_jitter_stays_within_half_to_full_delay():
    policy = RetryPolicy(retries=9, backoff=2.0, backoff_max=300.0, jitter=True)
    rand = random.Random(7)
    delays = [plan.retry_delay(policy, 3, rand) for _ in range(200)]
    assert min(delays) >= 4.0
    assert max(delays) <= 8.0
    assert len(set(delays)) > 100


def test_route_objects_are_not_decided_here():
    # The body turns Route(key, payload) into (payload, key) before a decision is made.
    assert decide(DIVERT, "A.0", "payload", Route("x", "payload").key) == plan.Next(
        "B.1", "payload", route="x"
    )


@pytest.mark.parametrize(
    ("items", "workers", "size"),
    [
        (10, 1, 10),  # the expanding worker runs them all, with no job for another
        (100, 1, 10),
        (100, 4, 10),
        (100, 16, 3),
        (100, 64, 1),
        (12, 2, 4),  # one job for the expanding worker, two for the other
        (10_000, 0, 10),
        (100, 0, 1),
    ],
)
def test_expand_jobs_follow_the_workers_serving_the_queue(items, workers, size):
    """Two jobs for every worker but the one that expands, which runs one job's items
    itself (64 jobs when the number of workers is unknown)."""
    assert plan.BatchPolicy.for_workers(10, 20, workers).size(items) == size
