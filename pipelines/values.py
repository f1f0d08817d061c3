"""Strict JSON for everything the engine stores: context values, trigger inputs, step
payloads and outputs, event payloads.

The check runs in Python before any database is touched, so every database rejects
exactly the same values with exactly the same message, and nothing is half-written.
Values are then written in one canonical text and read through one decoder (the stored
form, at the end of this module), so what comes back is the same on every database.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from operator import itemgetter
from typing import Any

from django.db import models

from pipelines.conf import get_settings
from pipelines.exceptions import InvalidValueError

_SURROGATE = re.compile("[\ud800-\udfff]")
# PostgreSQL's bigint and SQLite's INTEGER are both 64-bit; bigger ints would behave
# differently per database, so they are refused everywhere.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _fmt_key(key: str) -> str:
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def _check_str(text: str, where: str) -> None:
    if "\x00" in text:
        raise _Invalid(where, "NUL character (\\u0000) is not allowed in strings")
    if _SURROGATE.search(text):
        raise _Invalid(where, "lone surrogate is not allowed in strings (not valid UTF-8)")


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem


def _walk(value: Any, where: str, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise _Invalid(where, f"nested deeper than {max_depth} levels (PIPELINES_MAX_VALUE_DEPTH)")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Invalid(where, "integer does not fit in 64 bits")
        return
    if isinstance(value, float):
        if math.isnan(value):
            raise _Invalid(where, "NaN is not allowed")
        if math.isinf(value):
            raise _Invalid(where, f"{'-' if value < 0 else ''}Infinity is not allowed")
        return
    if isinstance(value, str):
        _check_str(value, where)
        return
    if not value and isinstance(value, list | dict) and depth >= max_depth:
        # An empty list or object is a level of nesting too: depth 64 means 64 containers.
        raise _Invalid(where, f"nested deeper than {max_depth} levels (PIPELINES_MAX_VALUE_DEPTH)")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]", depth + 1, max_depth)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(
                    where, f"object keys must be str, got {type(key).__name__} key {key!r}"
                )
            _check_str(key, f"{where} key {json.dumps(key, ensure_ascii=True)}")
            _walk(item, f"{where}{_fmt_key(key)}", depth + 1, max_depth)
        return
    hint = " (use a list)" if isinstance(value, tuple | set | frozenset) else ""
    raise _Invalid(where, f"{type(value).__name__} is not a JSON type{hint}")


def check_json(
    value: Any, *, where: str, error: type[InvalidValueError] = InvalidValueError
) -> str:
    """Raise ``error`` unless ``value`` is strict JSON within the configured limits; return
    its stored text (:func:`encode`), whose size the limit counts.

    ``where`` names the destination, e.g. ``context["scores"]``; the message extends it with
    the path inside the value: ``context["scores"][3]: NaN is not allowed``.
    """
    conf = get_settings()
    try:
        _walk(value, where, 0, conf.max_value_depth)
    except _Invalid as invalid:
        raise error(f"{invalid.where}: {invalid.problem}", path=invalid.where) from None
    except RecursionError:
        raise error(f"{where}: nested too deeply", path=where) from None
    text = encode(value)
    size = len(text.encode())
    if size > conf.max_value_bytes:
        raise error(
            f"{where}: value is {size} bytes, over the limit of {conf.max_value_bytes} bytes "
            f"(PIPELINES_MAX_VALUE_BYTES)",
            path=where,
        )
    return text


def context_where(key: str) -> str:
    return "context" + _fmt_key(key)


def check_text(
    value: object,
    *,
    what: str,
    max_length: int,
    error: type[InvalidValueError] = InvalidValueError,
) -> str:
    """Raise ``error`` unless ``value`` is a str of 1 to ``max_length`` characters that
    every database stores as given (the rule of strings inside JSON values: no NUL, no lone
    surrogate). For the strings stored outside JSON: idempotency keys, event names,
    reasons."""
    if not isinstance(value, str):
        raise error(f"{what} must be a string, got {type(value).__name__}", path=what)
    if not 0 < len(value) <= max_length:
        raise error(f"{what} must be 1 to {max_length} characters, got {len(value)}", path=what)
    try:
        _check_str(value, what)
    except _Invalid as invalid:
        raise error(f"{invalid.where}: {invalid.problem}", path=what) from None
    return value


# --- The stored form -----------------------------------------------------------------------
# PostgreSQL's jsonb keeps numbers as `numeric` and objects in its own key order; SQLite
# and MariaDB keep the text as written. So that a value reads back the same on every
# database:
#
# * floats are written positionally, always with a decimal point (1e20 as
#   100000000000000000000.0): jsonb keeps the digits and the scale, so a float never
#   comes back as an integer;
# * -0.0 is written as 0.0: numeric has no negative zero;
# * objects come back in jsonb's key order on every database: shorter keys (in UTF-8
#   bytes) first, keys of one length in code-point order. PostgreSQL returns them so
#   already; reading the other databases sorts them.
#
# Every engine column is a :class:`StoredJSONField`, so values are stored only as
# :func:`encode` writes them and read only as :func:`decode` (or jsonb) returns them; the
# engine hands steps :func:`canonical` copies, so a value passed in memory equals the
# same value read from any database.

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# What float.__repr__ writes that jsonb would not give back as the same float: an
# exponent (1e+20, 1.5e-07) or a negative zero. The quick test skips the rest for the
# usual value that has neither. Otherwise the numbers are rewritten in the text between
# strings only (a string may hold "1e+20" too): the encoder's output has a quote only
# where a string starts or ends, so the parts between strings, joined by quotes, split
# back into the same parts. There a number follows a comma, a colon or an opening
# bracket (a leading comma stands in for one before a top-level number).
_MAY_RESHAPE = re.compile(r"e[+-]\d|-0\.0(?![\d.e])")
_STRINGS = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")')
_RESHAPE = re.compile(r"([,:\[])(-?\d[\d.]*e[+-]\d+|-0\.0(?![\d.e]))")


def _positional(match: re.Match[str]) -> str:
    before, number = match.groups()
    if number == "-0.0":
        return before + "0.0"
    text = format(Decimal(number), "f")
    return before + (text if "." in text else text + ".0")


def encode(value: Any) -> str:
    """The JSON text the engine stores for a checked value."""
    text = _ENCODER.encode(value)
    if _MAY_RESHAPE.search(text) is None:
        return text
    parts = _STRINGS.split("," + text)  # between strings, a string, between strings, ...
    between = '"'.join(parts[0::2])
    if _RESHAPE.search(between) is None:
        return text  # the look-alike was inside a string
    parts[0::2] = _RESHAPE.sub(_positional, between).split('"')
    return "".join(parts)[1:]


_first = itemgetter(0)


def _utf8_length(pair: tuple[str, Any]) -> int:
    return len(pair[0].encode())


def _jsonb_ordered(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    pairs.sort(key=_first)  # code-point order, which is UTF-8's byte order
    pairs.sort(key=_utf8_length)  # stable: shorter keys first
    return dict(pairs)


_DECODER = json.JSONDecoder(object_pairs_hook=_jsonb_ordered)


def decode(text: str) -> Any:
    """Stored text as Python, with every object's keys in jsonb's order."""
    return _DECODER.decode(text)


def canonical(value: Any) -> Any:
    """A private, plain copy of a checked value exactly as every database returns it."""
    return decode(encode(value))


def checked_canonical(
    value: Any, *, where: str, error: type[InvalidValueError] = InvalidValueError
) -> Any:
    """:func:`check_json`, then :func:`canonical` (one encoding serves both)."""
    return decode(check_json(value, where=where, error=error))


class StoredJSONEncoder(json.JSONEncoder):
    """Writes :func:`encode`'s text, whatever options ``json.dumps`` passes (Django and
    psycopg call it with their own)."""

    def encode(self, o: Any) -> str:
        return encode(o)


class StoredJSONDecoder(json.JSONDecoder):
    """Reads as :func:`decode` does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "object_pairs_hook": _jsonb_ordered})


class StoredJSONField(models.JSONField):
    """A JSON column in the stored form, on every database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(encoder=StoredJSONEncoder, decoder=StoredJSONDecoder)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        del kwargs["encoder"], kwargs["decoder"]
        return name, path, args, kwargs

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if connection.vendor == "postgresql" and isinstance(value, str):
            return json.loads(value)  # jsonb returns keys in its order already
        return super().from_db_value(value, expression, connection)
