"""Where a step's time goes: runs chains in this process (no RQ worker) and prints the
time and SQL statements per step, then the top of a cProfile.

    python bench/profile_steps.py [--runs 50] [--profile] [--values [--exponents]]

``--values`` runs ``ContextChain10`` instead of no-op steps: every step reads the context
value the step before it wrote and writes its payload's value (a ~3 kB list of records of
ints, floats, strings and nested objects) under a new key, so JSON encoding and decoding
show in the figures. ``--exponents`` makes two floats of every record ones that Python
writes with an exponent (1.5e-09, 3e+17), the costly case for the stored form.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def value_record(seed: int, exponents: bool = False) -> list[dict[str, Any]]:
    """About 3 kB of typical JSON: ids, prices, ratios, small and large floats (with
    ``exponents``, ones written with an exponent), names and nested tags."""
    scale = 1.0 if exponents else 1e5
    return [
        {
            "id": seed * 100 + row,
            "price": round(19.99 + row * 0.37, 2),
            "ratio": (row + 1) / 7,
            "tiny": 1.5e-9 * scale * (row + 1),
            "huge": 1.5e17 / scale / 10 * (row + 1),
            "name": f"item {row} of run {seed}",
            "tags": {"colour": "blue", "size": row % 4, "active": row % 2 == 0},
        }
        for row in range(20)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--values", action="store_true", help="steps that read and write values")
    parser.add_argument("--exponents", action="store_true", help="values with exponent floats")
    args = parser.parse_args()

    from bench.env import BenchEnv

    with BenchEnv():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from pipelines.engine.runner import run_chain
        from pipelines.models import PipelineRun, RunStatus, StepExecution
        from pipelines.services import run_trigger

        pipeline = "ContextChain10" if args.values else "Chain10"

        def first_input(n: int) -> dict[str, Any]:
            if args.values:
                return {"i": 0, "value": value_record(n, args.exponents)}
            return {"n": n}

        def one_batch() -> tuple[float, float]:
            """Wall time and this process's CPU time per step (the CPU figure leaves out
            the database server and is steadier on a shared machine)."""
            runs = [run_trigger(pipeline=pipeline, input=first_input(i)) for i in range(args.runs)]
            firsts = [StepExecution.objects.get(run=r).pk for r in runs]
            start, cpu_start = time.perf_counter(), time.process_time()
            for pk in firsts:
                run_chain(pk, 1, worker="profile", queue="pipelines")
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            done = PipelineRun.objects.filter(pk__in=[r.pk for r in runs])
            assert done.filter(status=RunStatus.SUCCEEDED).count() == len(runs), "a run failed"
            return elapsed / (10 * len(runs)), cpu / (10 * len(runs))

        one_batch()  # warm up
        batches = [one_batch() for _ in range(3)]
        per_step = [wall for wall, _ in batches]
        cpu_per_step = [cpu for _, cpu in batches]
        with CaptureQueriesContext(connection) as queries:
            run = run_trigger(pipeline=pipeline, input=first_input(0))
            first = StepExecution.objects.get(run=run).pk
            before = len(queries)
            run_chain(first, 1, worker="profile", queue="pipelines")
        statements = queries.captured_queries[before:]
        print(f"per step: {statistics.median(per_step) * 1000:.2f} ms (median of 3 batches)")
        print(f"CPU per step in this process: {statistics.median(cpu_per_step) * 1000:.2f} ms")
        print(f"SQL statements for one 10-step chain: {len(statements)}")
        for q in statements[:14]:
            print("   ", " ".join(q["sql"].split())[:150])
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            one_batch()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
