"""The stored form of JSON values (pipelines.values): one canonical text for every
database, one decoder, and every JSON column of the engine using them."""

from __future__ import annotations

import json
import json.encoder
import random
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import models

from pipelines.values import (
    StoredJSONDecoder,
    StoredJSONEncoder,
    canonical,
    decode,
    encode,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e20, "100000000000000000000.0"),
        (-1e20, "-100000000000000000000.0"),
        (1e16, "10000000000000000.0"),
        (1.5e-7, "0.00000015"),
        (5e-324, "0." + "0" * 323 + "5"),
        (sys.float_info.max, "17976931348623157" + "0" * 292 + ".0"),
        (0.1, "0.1"),
        (3.0, "3.0"),
        (-0.0, "0.0"),
        (0.0, "0.0"),
        (-0.05, "-0.05"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (10**16, "10000000000000000"),
        ([-0.0, 1e-5, -2.5e30], "[0.0,0.00001,-2500000000000000000000000000000.0]"),
        ({"b": 1, "aa": 2, "a": {"z": None, "é": True, "Z": False}}, None),
    ],
)
def test_floats_are_written_positionally_and_keys_sorted(value: Any, text: str | None) -> None:
    expected = text or '{"a":{"Z":false,"z":null,"é":true},"aa":2,"b":1}'
    assert encode(value) == expected
    # Read back by any JSON parser, it is the same float, never an int.
    assert repr(json.loads(encode(value))) == repr(canonical(value))


def test_text_inside_strings_is_never_touched() -> None:
    value = {"k": '1e+20 -0.0 "5e-324" \\"1e+5\\"', "n": 1e20, '-0.0"': -0.0}
    assert encode(value) == (
        '{"-0.0\\"":0.0,"k":"1e+20 -0.0 \\"5e-324\\" \\\\\\"1e+5\\\\\\"",'
        '"n":100000000000000000000.0}'
    )
    assert decode(encode(value)) == {'-0.0"': 0.0, "k": value["k"], "n": 1e20}


def reference_encode(value: Any) -> str:
    """The stored form, written the slow and obvious way: the standard library's pure-Python
    encoder with a float formatter that never writes an exponent or a negative zero."""

    def floatstr(number: float) -> str:
        if number == 0:
            return "0.0"
        text = repr(number)
        if "e" not in text:
            return text
        text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"

    iterencode = json.encoder._make_iterencode(  # type: ignore[attr-defined]
        {}, None, json.encoder.py_encode_basestring, None, floatstr, ":", ",", True, False, True
    )
    return "".join(iterencode(value, 0))


def random_value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rnd.choice([1e20, -1e-7, -0.0, 0.0, 5e-324, 1.5, -2.5e300, 1e16, 123.0])
    if kind == 1:
        return rnd.randrange(-(2**63), 2**63)
    if kind == 2:
        return rnd.choice(
            ["1e+20", "-0.0", 'a"b', 'x\\"1e-5', ",1e+5,", '"', "\\", "é😀", ":-0.0]"]
        )
    if kind == 3:
        return None
    if kind == 4:
        return rnd.random() * 10 ** rnd.randrange(-30, 30)
    if kind == 5:
        return rnd.choice([True, False])
    if kind == 6:
        return [random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    keys = ["a", "b", "1e+5", "-0.0", '"q"', "é", ",-0.0"]
    return {
        rnd.choice(keys) + str(rnd.randrange(3)): random_value(rnd, depth + 1)
        for _ in range(rnd.randrange(4))
    }


def test_encode_matches_the_obvious_encoder_on_random_values() -> None:
    rnd = random.Random(10)
    for _ in range(3000):
        value = random_value(rnd)
        assert encode(value) == reference_encode(value), value


def test_decode_sorts_keys_in_any_order_a_database_returns_them() -> None:
    # jsonb returns shorter keys first.
    got = decode('{"b": 1, "Z": 2, "aa": {"y": 1, "x": [{"d": 0, "c": 1}]}, "a": 3}')
    assert list(got) == ["Z", "a", "aa", "b"]
    assert list(got["aa"]) == ["x", "y"]
    assert list(got["aa"]["x"][0]) == ["c", "d"]


def test_canonical_is_a_plain_private_copy() -> None:
    value = {"b": [1, {"y": -0.0, "x": 1e20}], "a": "s"}
    copy = canonical(value)
    assert repr(copy) == "{'a': 's', 'b': [1, {'x': 1e+20, 'y': 0.0}]}"
    copy["b"].append(2)
    assert value["b"] == [1, {"y": -0.0, "x": 1e20}]


def test_the_field_encoder_ignores_json_dumps_options() -> None:
    # Django and psycopg call json.dumps(value, cls=encoder) with their own options.
    assert json.dumps({"b": 1e20, "a": "é"}, cls=StoredJSONEncoder) == encode({"b": 1e20, "a": "é"})
    assert list(json.loads('{"b": 1, "a": 2}', cls=StoredJSONDecoder)) == ["a", "b"]


def test_every_json_column_of_the_engine_uses_the_stored_form() -> None:
    fields = [
        field
        for model in apps.get_app_config("pipelines").get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.JSONField)
    ]
    assert len(fields) == 6
    for field in fields:
        assert field.encoder is StoredJSONEncoder, field
        assert field.decoder is StoredJSONDecoder, field
