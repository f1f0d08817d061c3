"""The stored form of JSON values (pipelines.values): one canonical text for every
database, one decoder, and every JSON column of the engine using them."""

from __future__ import annotations

import json
import sys
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
