"""Pure unit tests of strict JSON checking (pipelines.values) and of the read-only view of
the trigger input (pipelines.frozen)."""

from __future__ import annotations

import copy
import datetime
import decimal
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from django.test import override_settings

from pipelines.exceptions import (
    ContextValueError,
    InputValueError,
    InvalidValueError,
    OutputValueError,
    ReadOnlyError,
)
from pipelines.frozen import FrozenDict, FrozenList, freeze, thaw
from pipelines.values import check_json, context_where

READ_ONLY = "context.input is read-only (it is the run's trigger input); copy it to change it"
READ_ONLY_RE = re.escape(READ_ONLY)


class Widget:
    """Some object that is not JSON."""


def nested_lists(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` wrapped in ``depth`` lists: the leaf sits ``depth`` levels below the top."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --- check_json: bad values ----------------------------------------------------------------


def test_nan_message_names_destination_and_path() -> None:
    with pytest.raises(ContextValueError) as info:
        check_json(
            {"scores": [1, 2, 3, float("nan")]}, where='context["scores"]', error=ContextValueError
        )
    assert str(info.value) == 'context["scores"]["scores"][3]: NaN is not allowed'
    assert info.value.path == 'context["scores"]["scores"][3]'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), 'input["v"]: NaN is not allowed'),
        (float("inf"), 'input["v"]: Infinity is not allowed'),
        (float("-inf"), 'input["v"]: -Infinity is not allowed'),
        ("a\x00b", 'input["v"]: NUL character (\\u0000) is not allowed in strings'),
        ("ok \ud800", 'input["v"]: lone surrogate is not allowed in strings (not valid UTF-8)'),
        (datetime.datetime(2024, 1, 1), 'input["v"]: datetime is not a JSON type'),
        (datetime.date(2024, 1, 1), 'input["v"]: date is not a JSON type'),
        (decimal.Decimal("1.5"), 'input["v"]: Decimal is not a JSON type'),
        ({1, 2}, 'input["v"]: set is not a JSON type (use a list)'),
        (frozenset({1}), 'input["v"]: frozenset is not a JSON type (use a list)'),
        (b"bytes", 'input["v"]: bytes is not a JSON type'),
        ((1, 2), 'input["v"]: tuple is not a JSON type (use a list)'),
        (Widget(), 'input["v"]: Widget is not a JSON type'),
        ({1: "x"}, 'input["v"]: object keys must be str, got int key 1'),
        ({None: "x"}, 'input["v"]: object keys must be str, got NoneType key None'),
        (
            {"a\x00": 1},
            'input["v"] key "a\\u0000": NUL character (\\u0000) is not allowed in strings',
        ),
        (
            {"\ud800": 1},
            'input["v"] key "\\ud800": lone surrogate is not allowed in strings (not valid UTF-8)',
        ),
        (2**63, 'input["v"]: integer does not fit in 64 bits'),
        (-(2**63) - 1, 'input["v"]: integer does not fit in 64 bits'),
        (10**30, 'input["v"]: integer does not fit in 64 bits'),
    ],
    ids=[
        "nan",
        "+inf",
        "-inf",
        "nul-in-string",
        "lone-surrogate",
        "datetime",
        "date",
        "decimal",
        "set",
        "frozenset",
        "bytes",
        "tuple",
        "custom-object",
        "int-key",
        "none-key",
        "nul-in-key",
        "surrogate-in-key",
        "int-2**63",
        "int-below-min",
        "int-huge",
    ],
)
def test_bad_value_matrix(value: Any, message: str) -> None:
    with pytest.raises(InputValueError) as info:
        check_json({"ok": [1, "two"], "v": value}, where="input", error=InputValueError)
    assert str(info.value) == message
    assert info.value.path == message.split(": ", 1)[0]


@pytest.mark.parametrize("error", [InvalidValueError, ContextValueError, OutputValueError])
def test_error_type_is_the_one_passed(error: type[InvalidValueError]) -> None:
    with pytest.raises(error, match=r"^out\[0\]\[1\]: Infinity is not allowed$") as info:
        check_json([[0, float("inf")]], where="out", error=error)
    assert type(info.value) is error
    assert isinstance(info.value, ValueError)


def test_default_error_is_invalid_value_error() -> None:
    with pytest.raises(InvalidValueError, match=r"^x: bytes is not a JSON type$") as info:
        check_json(b"", where="x")
    assert type(info.value) is InvalidValueError


def test_bad_value_deep_inside_names_full_path() -> None:
    value = {"users": [{"name": "ann"}, {"name": "bob", "tags": ["a", {"k": float("nan")}]}]}
    with pytest.raises(OutputValueError) as info:
        check_json(value, where="output of step Fetch.0 (run 7)", error=OutputValueError)
    assert str(info.value) == (
        'output of step Fetch.0 (run 7)["users"][1]["tags"][1]["k"]: NaN is not allowed'
    )


def test_keys_in_path_are_json_quoted() -> None:
    with pytest.raises(InvalidValueError) as info:
        check_json({'say "hi"': {"ünï": [float("nan")]}}, where=context_where("k"))
    assert str(info.value) == 'context["k"]["say \\"hi\\""]["ünï"][0]: NaN is not allowed'


def test_non_str_key_names_the_object_that_holds_it() -> None:
    with pytest.raises(InvalidValueError) as info:
        check_json({"outer": {"inner": {2.5: "x"}}}, where="input")
    assert str(info.value) == 'input["outer"]["inner"]: object keys must be str, got float key 2.5'


@override_settings(PIPELINES_MAX_VALUE_DEPTH=3)
def test_nested_too_deep() -> None:
    check_json(nested_lists(3), where="input")  # the leaf is exactly 3 levels down
    check_json({"a": {"b": {"c": 1}}}, where="input")
    with pytest.raises(InputValueError) as info:
        check_json(nested_lists(4), where="input", error=InputValueError)
    assert str(info.value) == (
        "input[0][0][0][0]: nested deeper than 3 levels (PIPELINES_MAX_VALUE_DEPTH)"
    )
    with pytest.raises(InputValueError) as info:
        check_json({"a": {"b": {"c": {"d": 1}}}}, where="input", error=InputValueError)
    assert str(info.value) == (
        'input["a"]["b"]["c"]["d"]: nested deeper than 3 levels (PIPELINES_MAX_VALUE_DEPTH)'
    )


def test_default_max_depth_is_what_every_database_stores() -> None:
    check_json(nested_lists(29), where="input")
    with pytest.raises(InvalidValueError, match=r"nested deeper than 29 levels"):
        check_json(nested_lists(30), where="input")


@pytest.mark.parametrize("innermost", [[], {}])
@override_settings(PIPELINES_MAX_VALUE_DEPTH=64)
def test_depth_counts_containers_so_64_means_64(innermost: Any) -> None:
    """An empty list or object is a level too: 64 nested containers pass, 65 do not."""
    check_json(nested_lists(63, leaf=innermost), where="input")
    with pytest.raises(InvalidValueError) as info:
        check_json(nested_lists(64, leaf=innermost), where="input")
    assert str(info.value) == "input" + "[0]" * 64 + (
        ": nested deeper than 64 levels (PIPELINES_MAX_VALUE_DEPTH)"
    )


@override_settings(PIPELINES_MAX_VALUE_DEPTH=1_000_000)
def test_nesting_beyond_the_recursion_limit_is_an_invalid_value() -> None:
    with pytest.raises(ContextValueError) as info:
        check_json(nested_lists(50_000), where="context", error=ContextValueError)
    assert str(info.value) == "context: nested too deeply"


@override_settings(PIPELINES_MAX_VALUE_BYTES=10)
def test_too_large() -> None:
    check_json("x" * 8, where="input")  # '"xxxxxxxx"' is exactly 10 bytes
    with pytest.raises(InputValueError) as info:
        check_json("x" * 9, where="input", error=InputValueError)
    assert str(info.value) == (
        "input: value is 11 bytes, over the limit of 10 bytes (PIPELINES_MAX_VALUE_BYTES)"
    )
    assert info.value.path == "input"


@override_settings(PIPELINES_MAX_VALUE_BYTES=10)
def test_size_counts_utf8_bytes_of_compact_json() -> None:
    check_json("é" * 4, where="input")  # 2 quotes + 4 * 2 bytes = 10
    check_json([1, 2, 3, 4], where="input")  # compact: '[1,2,3,4]' is 9 bytes
    with pytest.raises(InvalidValueError, match=r"^input: value is 12 bytes, over the limit"):
        check_json("é" * 5, where="input")


# --- check_json: good values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        1.5,
        -0.0,
        1e308,
        "",
        "plain",
        "ünïcødé ✓ 日本語 😀",
        [],
        {},
        [1, "a", None, True, 2.5, [], {}],
        {"a": {"b": [1, {"c": ["d", {"e": None}]}]}, "ünï": "😀", "": 0},
        nested_lists(28, leaf={}),  # 29 containers: exactly the default limit
    ],
)
def test_good_values_pass_unchanged(value: Any) -> None:
    before = copy.deepcopy(value)
    check_json(value, where="input")  # raises on a bad value
    assert value == before
    assert type(value) is type(before)


def test_frozen_input_is_accepted_as_json() -> None:
    check_json(freeze({"cfg": {"retries": [1, 2]}}), where='context["cfg"]')
    check_json(freeze([1, {"a": [2]}]), where="output")


# --- frozen: reading -------------------------------------------------------------------------


def sample() -> dict[str, Any]:
    return {
        "name": "run",
        "tags": ["a", "b", "c"],
        "nested": {"items": [{"id": 1}, {"id": 2, "sub": [10, 20]}], "empty": {}},
        "count": 3,
        "none": None,
    }


def test_freeze_reads_like_a_dict() -> None:
    original = sample()
    frozen = freeze(original)
    assert isinstance(frozen, FrozenDict)
    assert isinstance(frozen, Mapping)
    assert frozen["name"] == "run"
    assert frozen["nested"]["items"][1]["sub"][1] == 20
    assert list(frozen) == ["name", "tags", "nested", "count", "none"]
    assert len(frozen) == 5
    assert "tags" in frozen
    assert "missing" not in frozen
    assert frozen.get("count") == 3
    assert frozen.get("missing", "dflt") == "dflt"
    assert list(frozen.keys()) == list(original.keys())
    assert next(iter(frozen.items())) == ("name", "run")
    assert frozen == original
    assert original == frozen
    assert frozen != {**original, "count": 4}
    assert dict(frozen)["count"] == 3
    with pytest.raises(KeyError):
        frozen["missing"]


def test_freeze_reads_like_a_list() -> None:
    frozen = freeze(sample())
    tags = frozen["tags"]
    items = frozen["nested"]["items"]
    assert isinstance(tags, FrozenList)
    assert isinstance(tags, Sequence)
    assert isinstance(items[1], FrozenDict)
    assert isinstance(items[1]["sub"], FrozenList)
    assert tags[0] == "a"
    assert tags[-1] == "c"
    assert list(tags) == ["a", "b", "c"]
    assert [item["id"] for item in items] == [1, 2]
    assert len(tags) == 3
    assert "b" in tags
    assert "z" not in tags
    assert {"id": 1} in items
    assert tags == ["a", "b", "c"]
    assert ["a", "b", "c"] == tags  # noqa: SIM300 - the reflected __eq__
    assert tags != ["a", "b"]
    assert tags.index("c") == 2
    assert tags.count("a") == 1
    assert list(reversed(tags)) == ["c", "b", "a"]
    assert sorted(freeze([3, 1, 2])) == [1, 2, 3]
    with pytest.raises(IndexError):
        tags[3]


def test_frozen_list_slice_reads_like_a_list() -> None:
    tags = freeze(["a", "b", "c"])
    assert tags[1:] == ["b", "c"]


def test_freeze_copies_the_original() -> None:
    original = sample()
    frozen = freeze(original)
    original["tags"].append("d")
    original["nested"]["items"][0]["id"] = 99
    original["new"] = True
    assert frozen["tags"] == ["a", "b", "c"]
    assert frozen["nested"]["items"][0]["id"] == 1
    assert "new" not in frozen


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "text"])
def test_freeze_and_thaw_leave_scalars_alone(value: Any) -> None:
    assert freeze(value) is value
    assert thaw(value) is value


def test_frozen_values_are_unhashable_like_dict_and_list() -> None:
    with pytest.raises(TypeError):
        hash(freeze({"a": 1}))
    with pytest.raises(TypeError):
        hash(freeze([1]))


# --- frozen: every mutation is refused, on every level -------------------------------------


def _iadd(target: Any) -> None:
    target += ["x"]


DICT_MUTATIONS: dict[str, Callable[[Any], Any]] = {
    "setitem": lambda d: d.__setitem__("k", 1),
    "setitem-existing": lambda d: d.__setitem__(next(iter(d)), 1),
    "delitem": lambda d: d.__delitem__(next(iter(d))),
    "update": lambda d: d.update({"k": 1}),
    "update-kwargs": lambda d: d.update(k=1),
    "pop": lambda d: d.pop(next(iter(d))),
    "pop-default": lambda d: d.pop("missing", None),
    "popitem": lambda d: d.popitem(),
    "setdefault": lambda d: d.setdefault("k", 1),
    "clear": lambda d: d.clear(),
}

LIST_MUTATIONS: dict[str, Callable[[Any], Any]] = {
    "setitem": lambda li: li.__setitem__(0, "x"),
    "setitem-slice": lambda li: li.__setitem__(slice(0, 1), ["x"]),
    "delitem": lambda li: li.__delitem__(0),
    "append": lambda li: li.append("x"),
    "extend": lambda li: li.extend(["x"]),
    "insert": lambda li: li.insert(0, "x"),
    "pop": lambda li: li.pop(),
    "remove": lambda li: li.remove(li[0]),
    "clear": lambda li: li.clear(),
    "sort": lambda li: li.sort(),
    "reverse": lambda li: li.reverse(),
    "iadd": _iadd,
}

DICT_LEVELS: dict[str, Callable[[Any], Any]] = {
    "top": lambda f: f,
    "nested": lambda f: f["nested"],
    "in-list": lambda f: f["nested"]["items"][1],
}

LIST_LEVELS: dict[str, Callable[[Any], Any]] = {
    "top-level-key": lambda f: f["tags"],
    "nested": lambda f: f["nested"]["items"],
    "in-list-in-dict": lambda f: f["nested"]["items"][1]["sub"],
}


@pytest.mark.parametrize("level", DICT_LEVELS)
@pytest.mark.parametrize("mutation", DICT_MUTATIONS)
def test_dict_mutations_raise_read_only(mutation: str, level: str) -> None:
    original = sample()
    frozen = freeze(original)
    target = DICT_LEVELS[level](frozen)
    with pytest.raises(ReadOnlyError) as info:
        DICT_MUTATIONS[mutation](target)
    assert str(info.value) == READ_ONLY
    assert isinstance(info.value, TypeError)
    assert frozen == sample()
    assert original == sample()


@pytest.mark.parametrize("level", LIST_LEVELS)
@pytest.mark.parametrize("mutation", LIST_MUTATIONS)
def test_list_mutations_raise_read_only(mutation: str, level: str) -> None:
    original = sample()
    frozen = freeze(original)
    target = LIST_LEVELS[level](frozen)
    with pytest.raises(ReadOnlyError) as info:
        LIST_MUTATIONS[mutation](target)
    assert str(info.value) == READ_ONLY
    assert frozen == sample()
    assert original == sample()


def test_augmented_assignment_through_the_parent_is_refused() -> None:
    frozen = freeze(sample())
    with pytest.raises(ReadOnlyError, match=READ_ONLY_RE):
        frozen["tags"] += ["d"]
    with pytest.raises(ReadOnlyError, match=READ_ONLY_RE):
        frozen["count"] += 1
    assert frozen["tags"] == ["a", "b", "c"]
    assert frozen["count"] == 3


def test_top_level_list_is_frozen_too() -> None:
    frozen = freeze([{"a": [1]}, 2])
    assert isinstance(frozen, FrozenList)
    with pytest.raises(ReadOnlyError, match=READ_ONLY_RE):
        frozen.append(3)
    with pytest.raises(ReadOnlyError, match=READ_ONLY_RE):
        frozen[0]["a"].append(2)
    with pytest.raises(ReadOnlyError, match=READ_ONLY_RE):
        frozen[0]["b"] = 1
    assert frozen == [{"a": [1]}, 2]


# --- thaw ----------------------------------------------------------------------------------


def test_thaw_returns_plain_mutable_copies() -> None:
    original = sample()
    frozen = freeze(original)
    thawed = thaw(frozen)
    assert thawed == original
    assert type(thawed) is dict
    assert type(thawed["tags"]) is list
    assert type(thawed["nested"]) is dict
    assert type(thawed["nested"]["items"][1]) is dict
    assert type(thawed["nested"]["items"][1]["sub"]) is list

    thawed["tags"].append("d")
    thawed["nested"]["items"][1]["sub"][0] = -1
    thawed["new"] = 1
    assert frozen == sample()  # the frozen view is unaffected
    assert original == sample()


def test_thaw_of_plain_values_is_a_deep_copy() -> None:
    original = sample()
    thawed = thaw(original)
    assert thawed == original
    assert thawed is not original
    assert thawed["nested"]["items"] is not original["nested"]["items"]
    thawed["nested"]["items"][0]["id"] = 99
    assert original["nested"]["items"][0]["id"] == 1


def test_thaw_of_top_level_list() -> None:
    thawed = thaw(freeze([1, [2, {"a": [3]}]]))
    assert thawed == [1, [2, {"a": [3]}]]
    assert type(thawed) is list
    assert type(thawed[1][1]) is dict
    thawed[1][1]["a"].append(4)
    assert thawed == [1, [2, {"a": [3, 4]}]]


def test_triggering_an_abstract_pipeline_is_a_definition_error():
    from pipelines import Pipeline
    from pipelines.exceptions import DefinitionError

    class Base(Pipeline):
        abstract = True

    for abstract in (Pipeline, Base):
        with pytest.raises(DefinitionError, match="is abstract"):
            abstract.trigger({})


def test_every_library_error_derives_from_pipeline_error():
    from pipelines import exceptions

    errors = [
        obj
        for obj in vars(exceptions).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and obj.__module__ == exceptions.__name__
    ]
    outside = [e.__name__ for e in errors if not issubclass(e, exceptions.PipelineError)]
    # StepTimeout is a BaseException on purpose: step code's `except Exception` must not
    # swallow it.
    assert outside == ["StepTimeout"]
