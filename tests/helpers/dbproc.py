"""Run a piece of test code in a fresh process against a chosen database.

``python -m tests.helpers.dbproc MODE [ARGS...]`` with ``DATABASE_URL`` (and optionally
``PIPELINES_TEST_DB_NAME``) in the environment; prints one JSON document on stdout.
Used by the tests that must behave identically on PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def create_run() -> dict[str, Any]:
    from pipelines.models import PipelineRun, RunContext

    run = PipelineRun.objects.create(pipeline="ChainPipeline", input={"n": 1})
    RunContext.objects.create(run=run, data={})
    return {"run_id": run.pk}


def race(run_id: str, index: str, start_at: str, keys: str) -> dict[str, Any]:
    """Race for every key in ``keys`` (comma-separated), in a shuffled order."""
    from pipelines.exceptions import OverwriteError
    from pipelines.models import PipelineRun

    run = PipelineRun.objects.get(pk=int(run_id))
    order = keys.split(",")
    random.Random(int(index)).shuffle(order)
    won, lost, errors = [], [], []
    # Open the connection before the start line so every process hits the keys together.
    run.context.has("warm-up")
    time.sleep(max(0.0, float(start_at) - time.time()))
    for key in order:
        try:
            run.context.set(key, f"process-{index}")
            won.append(key)
        except OverwriteError as exc:
            lost.append([key, str(exc)])
        except Exception as exc:
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
    return {"won": won, "lost": lost, "errors": errors}


def context(run_id: str) -> dict[str, Any]:
    from pipelines.models import ContextWrite, RunContext

    return {
        "data": RunContext.objects.get(pk=int(run_id)).data,
        "writes": list(
            ContextWrite.objects.filter(run_id=int(run_id))
            .order_by("key")
            .values_list("key", "value")
        ),
    }


def trigger(pipeline: str, key: str, start_at: str) -> dict[str, Any]:
    """Trigger ``pipeline`` with an idempotency key at the same instant as the others."""
    from pipelines import registry

    cls = registry.get(pipeline)
    from django.db import connection

    connection.ensure_connection()
    time.sleep(max(0.0, float(start_at) - time.time()))
    run = cls.trigger({"hold": 0}, idempotency_key=key)
    return {"run_id": run.pk}


def bad_values() -> dict[str, Any]:
    """Try every bad value through every entry point; report errors and what was written."""
    import datetime
    import decimal

    from pipelines.context import StepContext
    from pipelines.exceptions import InvalidValueError
    from pipelines.models import ContextWrite, PipelineRun, RunContext
    from pipelines.services import run_trigger

    run = PipelineRun.objects.create(pipeline="ChainPipeline", input={"n": 1})
    RunContext.objects.create(run=run, data={})
    deep: Any = "bottom"
    for _ in range(70):
        deep = [deep]
    cases: dict[str, Any] = {
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "nul": "a\x00b",
        "surrogate": "x\ud800y",
        "datetime": datetime.datetime(2026, 1, 1),
        "decimal": decimal.Decimal("1.5"),
        "set": {1, 2},
        "bytes": b"raw",
        "non-str key": {1: "one"},
        "too deep": deep,
        "too large": "x" * (1024 * 1024 + 1),
        "nested nan": {"scores": [1, 2, 3, float("nan")]},
    }
    results: dict[str, Any] = {}
    runs_before = PipelineRun.objects.count()
    for name, value in cases.items():
        outcome = {}
        for entry, call in {
            "run.context.set": lambda v: run.context.set("scores", v),
            "step context.set": lambda v: StepContext(run.pk, run.input).set("scores", v),
            "trigger input": lambda v: run_trigger(pipeline="ChainPipeline", input=v),
        }.items():
            try:
                call(value)
                outcome[entry] = "accepted"
            except InvalidValueError as exc:
                outcome[entry] = f"{type(exc).__name__}: {exc}"
        results[name] = outcome
    key_results = {}
    for name, key in {"int key": 1, "none key": None, "empty key": "", "nul key": "a\x00"}.items():
        try:
            run.context.set(key, "v")
            key_results[name] = "accepted"
        except InvalidValueError as exc:
            key_results[name] = f"{type(exc).__name__}: {exc}"
    return {
        "results": results,
        "keys": key_results,
        "context": RunContext.objects.get(pk=run.pk).data,
        "writes": ContextWrite.objects.filter(run=run).count(),
        "new_runs": PipelineRun.objects.count() - runs_before,
    }


if __name__ == "__main__":
    _setup()
    mode, *args = sys.argv[1:]
    modes: dict[str, Any] = {
        "create_run": create_run,
        "race": race,
        "context": context,
        "trigger": trigger,
        "bad_values": bad_values,
    }
    print(json.dumps(modes[mode](*args)))
