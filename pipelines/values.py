"""Strict JSON checking for everything the engine stores: context values, trigger inputs
and step outputs.

The check runs in Python before any database is touched, so SQLite and PostgreSQL reject
exactly the same values with exactly the same message, and nothing is half-written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

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
) -> None:
    """Raise ``error`` unless ``value`` is strict JSON within the configured limits.

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
    size = len(dumps(value).encode())
    if size > conf.max_value_bytes:
        raise error(
            f"{where}: value is {size} bytes, over the limit of {conf.max_value_bytes} bytes "
            f"(PIPELINES_MAX_VALUE_BYTES)",
            path=where,
        )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


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
