"""The stored form of JSON values (pipelines.values): the text the engine writes, the
order keys come back in, and every JSON column of the engine using them."""

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
    StoredJSONField,
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
        (
            {"b": 1, "aa": -0.0, "a": {"z": None, "é": True}},
            '{"b":1,"aa":0.0,"a":{"z":null,"é":true}}',
        ),
    ],
)
def test_floats_are_written_positionally(value: Any, text: str) -> None:
    assert encode(value) == text
    # Read back by any JSON parser, a float is the same float, never an int.
    back = json.dumps(json.loads(text), sort_keys=True)
    assert back == json.dumps(canonical(value), sort_keys=True)


def test_text_inside_strings_is_never_touched() -> None:
    value = {"k": '1e+20 -0.0 "5e-324" \\"1e+5\\"', "n": 1e20, '-0.0"': -0.0}
    assert encode(value) == (
        '{"k":"1e+20 -0.0 \\"5e-324\\" \\\\\\"1e+5\\\\\\"",'
        '"n":100000000000000000000.0,"-0.0\\"":0.0}'
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
        {}, None, json.encoder.py_encode_basestring, None, floatstr, ":", ",", False, False, True
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


def test_decode_orders_keys_as_jsonb_does() -> None:
    # Shorter keys (in UTF-8 bytes) first; keys of one length in code-point order.
    got = decode(
        '{"b": 1, "aa": {"yy": 1, "x": [{"d": 0, "c": 1}]}, "é": 0, "Z": 2, "": 3, "a": 4}'
    )
    assert list(got) == ["", "Z", "a", "b", "aa", "é"]
    assert list(got["aa"]) == ["x", "yy"]
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
    assert list(json.loads('{"aa": 1, "b": 2, "a": 3}', cls=StoredJSONDecoder)) == ["a", "b", "aa"]


def test_every_json_column_of_the_engine_uses_the_stored_form() -> None:
    fields = [
        field
        for model in apps.get_app_config("pipelines").get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.JSONField)
    ]
    assert len(fields) == 7  # six of runs, steps and context, and stored definitions
    for field in fields:
        assert isinstance(field, StoredJSONField), field
        assert field.encoder is StoredJSONEncoder, field
        assert field.decoder is StoredJSONDecoder, field
