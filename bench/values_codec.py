"""What the stored form of JSON values costs, without a database: the engine's encoder
and decoder (pipelines.values) against plain ``json.dumps``/``json.loads`` (what the
engine used before), on a step-sized value and a context-sized document, each with and
without floats that Python writes with an exponent. Best of several repeats, so that a
busy machine disturbs the figures less than it does timed runs of whole steps.

    python bench/values_codec.py
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.profile_steps import value_record
from pipelines.values import decode, encode


def best_us(func: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=7)) / number * 1e6


def codec_figures(value: Any, number: int) -> list[float]:
    text = encode(value)
    old_text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return [
        best_us(lambda: json.dumps(value, ensure_ascii=False, separators=(",", ":")), number),
        best_us(lambda: encode(value), number),
        best_us(lambda: json.loads(old_text), number),
        best_us(lambda: decode(text), number),
    ]


def main() -> None:
    print("| value | stored bytes | json.dumps | encode | json.loads | decode (SQLite/MariaDB) |")
    print("|---|---|---|---|---|---|")
    for exponents in (False, True):
        step_value = value_record(1, exponents)
        context = {f"k{i}": value_record(i, exponents) for i in range(10)}
        for label, value, number in [("step value", step_value, 2000), ("context", context, 200)]:
            figures = codec_figures(value, number)
            name = f"{label}{', exponents' if exponents else ''}"
            size = len(encode(value).encode())
            print(f"| {name} | {size} | " + " | ".join(f"{f:.0f} µs" for f in figures) + " |")
    print("On PostgreSQL the engine reads with json.loads: jsonb returns keys in order already.")


if __name__ == "__main__":
    main()
