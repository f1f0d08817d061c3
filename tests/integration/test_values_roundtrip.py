"""Values round-trip identically on every database.

A table of edge values travels every way a value can: trigger input, step payloads
(passed in memory to an inline successor, or read back from the database), context
writes staged in a step and committed, context writes from outside a step, an event
payload, divide and combine, and the run's output. Everything a step got, and every JSON
column the engine wrote, must equal the table's canonical form exactly: compared by
``repr``, which tells 1e20 from 10**20, -0.0 from 0.0, and shows key order.

The same expectations hold on every database, so running this module on PostgreSQL,
SQLite and MariaDB (``DATABASE_URL``) compares the three.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import pytest
from django.db import connection

from pipelines.engine.runner import run_chain, run_execution
from pipelines.exceptions import InvalidValueError
from pipelines.models import (
    ContextWrite,
    PipelineRun,
    RunContext,
    RunStatus,
    StepExecution,
    StepStatus,
)
from pipelines.values import check_json, decode, encode
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def deepest(leaf: Any) -> Any:
    """``leaf`` in as many nested lists as the strict check accepts."""
    value = leaf
    while True:
        try:
            check_json([value], where="probe")
        except InvalidValueError:
            return value
        value = [value]


# name -> (what a caller passes, what every database gives back)
EDGES: dict[str, tuple[Any, Any]] = {
    "float 1e20": (1e20, 1e20),
    "float -1e20": (-1e20, -1e20),
    "float 1e16": (1e16, 1e16),
    "float 1e22": (1e22, 1e22),
    "float 123.456e100": (123.456e100, 123.456e100),
    "float max": (sys.float_info.max, sys.float_info.max),
    "float -max": (-sys.float_info.max, -sys.float_info.max),
    "float min normal": (sys.float_info.min, sys.float_info.min),
    "float min subnormal": (5e-324, 5e-324),
    "float -min subnormal": (-5e-324, -5e-324),
    "float 1e-7": (1e-7, 1e-7),
    "float 0.1": (0.1, 0.1),
    "float 2/3": (2 / 3, 2 / 3),
    "float integral": (3.0, 3.0),
    "float 0.0": (0.0, 0.0),
    # jsonb's numeric has no negative zero: every database stores and returns 0.0.
    "float -0.0": (-0.0, 0.0),
    "floats -0.0 nested": ([-0.0, {"z": -0.0}, -0.05], [0.0, {"z": 0.0}, -0.05]),
    "int 0": (0, 0),
    "int max": (2**63 - 1, 2**63 - 1),
    "int min": (-(2**63), -(2**63)),
    "int 10**16": (10**16, 10**16),
    "true": (True, True),
    "false": (False, False),
    "null": (None, None),
    # Objects come back in jsonb's key order, at every level: shorter keys (in UTF-8
    # bytes) first, keys of one length in code-point order.
    "key order": (
        {"b": 1, "aa": 2, "a": 3, "é": 4, "Z": 5, "": 6, "10": 7, "9": 8},
        {"": 6, "9": 8, "Z": 5, "a": 3, "b": 1, "10": 7, "aa": 2, "é": 4},
    ),
    "key order nested": (
        [{"z": {"yy": 1, "x": [{"b": 0, "a": 1e20}]}, "a": None}],
        [{"a": None, "z": {"x": [{"a": 1e20, "b": 0}], "yy": 1}}],
    ),
    "string unicode": (
        'héllo ✓ 😀 \u2028 \t\n"\\ \x01 \x7f',
        'héllo ✓ 😀 \u2028 \t\n"\\ \x01 \x7f',
    ),
    "string like numbers": ('1e+20 -0.0 "5e-324"', '1e+20 -0.0 "5e-324"'),
    "string empty": ("", ""),
    "string long": ("ab✓😀" * 25_000, "ab✓😀" * 25_000),
    "list empty": ([], []),
    "object empty": ({}, {}),
    "floats many": (
        [i / 7 * 10.0**i for i in range(-30, 30)],
        [i / 7 * 10.0**i for i in range(-30, 30)],
    ),
}
GIVEN = {name: given for name, (given, _) in EDGES.items()}


def jsonb_order(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in sorted(data, key=lambda key: (len(key.encode()), key))}


# The table as a step gets it back: an object, so its keys are in jsonb's order too.
EXPECTED = jsonb_order({name: expected for name, (_, expected) in EDGES.items()})


def finish(run: PipelineRun, *, inline: bool) -> None:
    """Run every pending execution in this process. Inline, a worker runs a step's single
    successor itself and hands it the payload in memory; otherwise each step reads its
    payload from the database."""
    for _ in range(20):
        pending = StepExecution.objects.filter(
            run=run, status__in=[StepStatus.ENQUEUED, StepStatus.RETRYING]
        ).order_by("id")
        if not pending:
            return
        for execution in pending:
            if inline:
                run_chain(execution.pk, execution.attempt, worker="test", queue="pipelines")
            else:
                run_execution(execution.pk, execution.attempt, worker="test")


def assert_same(got: Any, expected: Any, what: str) -> None:
    assert repr(got) == repr(expected), what


@pytest.mark.parametrize("inline", [False, True], ids=["from-database", "inline"])
def test_edge_values_round_trip_through_a_run(redis_conn, inline):
    run = p.RoundTripPipeline.trigger(GIVEN)
    assert_same(run.input, EXPECTED, "the returned run's input")
    finish(run, inline=inline)
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING, run.error

    run.send_event("values", GIVEN)
    finish(run, inline=inline)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error

    # What each step got, in memory.
    context = RunContext.objects.get(pk=run.pk).data
    for step, payload in [
        ("StoreValues", EXPECTED),
        ("SeeValues", EXPECTED),
        ("SeeValuesB", EXPECTED),
        ("SeeValuesC", EXPECTED),
        ("CollectValues", [EXPECTED, EXPECTED]),
    ]:
        seen = context[f"seen by {step}"]
        assert seen["payload"] == repr(payload), f"{step}'s payload"
        assert seen["context"] == repr(EXPECTED), f"{step}'s context reads"

    # What the database gives back, column by column.
    fresh = PipelineRun.objects.get(pk=run.pk)
    assert_same(fresh.input, EXPECTED, "run.input")
    assert_same(fresh.output, EXPECTED, "run.output")
    rows = StepExecution.objects.filter(run=run).order_by("id")
    columns = {row.step: (row.payload, row.output) for row in rows}
    assert set(columns) == {
        "StoreValues",
        "SeeValues",
        "AwaitValues",
        "SeeValuesB",
        "SeeValuesC",
        "CollectValues",
    }
    for step, (payload, output) in columns.items():
        joined = step == "CollectValues"
        assert_same(payload, [EXPECTED, EXPECTED] if joined else EXPECTED, f"{step}.payload")
        assert_same(output, EXPECTED, f"{step}.output")  # AwaitValues': the event payload
    for name, expected in EXPECTED.items():
        assert_same(context[name], expected, f"context[{name!r}]")
        assert_same(fresh.context.get(name), expected, f"run.context.get({name!r})")
    written = dict(
        ContextWrite.objects.filter(run=run, key__in=list(EXPECTED)).values_list("key", "value")
    )
    assert_same(jsonb_order(written), EXPECTED, "the context's history")


def test_edge_values_round_trip_through_outside_writes(redis_conn):
    run = p.RoundTripPipeline.trigger({})
    for name, given in GIVEN.items():
        run.context.set(name, given)
    run.context.set("table", GIVEN)

    everything = jsonb_order({**EXPECTED, "table": EXPECTED})
    assert_same(run.context.to_dict(), everything, "run.context")
    for name, expected in EXPECTED.items():
        assert_same(run.context.get(name), expected, f"run.context.get({name!r})")
    history = dict(ContextWrite.objects.filter(run=run).values_list("key", "value"))
    assert_same(jsonb_order(history), everything, "history")


def test_a_float_that_jsonb_would_make_a_huge_integer_can_be_stored_again(redis_conn):
    """The reported failure: 1e20 accepted at trigger, then refused by the next ``set``
    of the same payload as "integer does not fit in 64 bits"."""
    run = p.ChainPipeline.trigger({"n": 1e20, "seen": []})
    finish(run, inline=False)
    run.refresh_from_db()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert_same(run.output, {"n": 2e20, "seen": ["Add", "AddAgain", "Double"]}, "output")
    assert_same(run.context.get("double-1e+20"), 2e20, "the value Double stored")


@pytest.mark.parametrize("leaf", [1e20, [], {}], ids=["float", "empty-list", "empty-object"])
def test_the_deepest_value_the_check_accepts_round_trips(redis_conn, leaf):
    value = deepest(leaf)
    run = p.KeepPipeline.trigger(value)
    run.context.set("outside", value)
    finish(run, inline=False)
    run.refresh_from_db()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert_same(run.output, value, "run.output")
    assert_same(run.context.get("kept"), value, "context written by the step")
    assert_same(run.context.get("outside"), value, "context written from outside")


def test_keys_come_back_in_the_order_postgresql_gives_them():
    """The decoder's order is jsonb's: on PostgreSQL, compare it with the server's."""
    if connection.vendor != "postgresql":
        pytest.skip("compares with PostgreSQL's own jsonb order")
    rnd = random.Random(6)
    alphabet = ["a", "b", "B", "0", "_", "é", "ß", "✓", "😀", "\u007f", " "]
    keys = {"".join(rnd.choices(alphabet, k=rnd.randrange(6))) for _ in range(300)}
    text = encode({key: i for i, key in enumerate(keys)})
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [text])
        from_server = json.loads(cursor.fetchone()[0])
    assert list(decode(text)) == list(from_server)
