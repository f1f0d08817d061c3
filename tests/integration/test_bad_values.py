"""The bad-value matrix: identical ContextValueError on PostgreSQL, SQLite and MariaDB, nothing
written, checked through every entry point that stores JSON."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_CONTEXT = {
    "nan": 'ContextValueError: context["scores"]: NaN is not allowed',
    "inf": 'ContextValueError: context["scores"]: Infinity is not allowed',
    "-inf": 'ContextValueError: context["scores"]: -Infinity is not allowed',
    "nul": 'ContextValueError: context["scores"]: NUL character (\\u0000) is not allowed in '
    "strings",
    "surrogate": 'ContextValueError: context["scores"]: lone surrogate is not allowed in strings '
    "(not valid UTF-8)",
    "datetime": 'ContextValueError: context["scores"]: datetime is not a JSON type',
    "decimal": 'ContextValueError: context["scores"]: Decimal is not a JSON type',
    "set": 'ContextValueError: context["scores"]: set is not a JSON type (use a list)',
    "bytes": 'ContextValueError: context["scores"]: bytes is not a JSON type',
    "non-str key": 'ContextValueError: context["scores"]: object keys must be str, got int key 1',
    "too deep": "nested deeper than 29 levels (PIPELINES_MAX_VALUE_DEPTH)",
    "too large": 'ContextValueError: context["scores"]: value is 1048579 bytes, over the limit '
    "of 1048576 bytes (PIPELINES_MAX_VALUE_BYTES)",
    "nested nan": 'ContextValueError: context["scores"]["scores"][3]: NaN is not allowed',
}


@pytest.fixture(scope="module")
def outcomes():
    return {}


@pytest.mark.parametrize("database", ["postgres", "sqlite", "mariadb"])
def test_every_bad_value_is_refused_the_same_way_and_nothing_is_written(
    on_database, database, outcomes
):
    report = on_database(database)("bad_values")
    outcomes[database] = report

    for name, expected in EXPECTED_CONTEXT.items():
        result = report["results"][name]
        assert expected in result["run.context.set"], (name, result)
        # Staged writes inside a step are checked by the very same rules, at the set() call.
        assert result["step context.set"] == result["run.context.set"], name
        trigger_error = result["trigger input"]
        assert trigger_error.startswith("InputValueError: input"), (name, trigger_error)
    assert report["keys"] == {
        "int key": "ContextValueError: context key must be a str, got int 1",
        "none key": "ContextValueError: context key must be a str, got NoneType None",
        "empty key": "ContextValueError: context key must be 1 to 255 characters, got 0",
        "nul key": 'ContextValueError: context key "a\\u0000": NUL character (\\u0000) is not '
        "allowed in strings",
    }
    assert report["context"] == {}
    assert report["writes"] == 0
    assert report["new_runs"] == 0

    if len(outcomes) == 3:
        for other in ("sqlite", "mariadb"):
            assert outcomes["postgres"]["results"] == outcomes[other]["results"], other
            assert outcomes["postgres"]["keys"] == outcomes[other]["keys"], other
