"""Where a step's time goes: runs chains in this process (no RQ worker) and prints the
time and SQL statements per step, then the top of a cProfile.

    python bench/profile_steps.py [--runs 50] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from bench.env import BenchEnv

    with BenchEnv():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from pipelines.engine.runner import run_chain
        from pipelines.models import PipelineRun, RunStatus, StepExecution
        from pipelines.services import run_trigger

        def one_batch() -> float:
            runs = [run_trigger(pipeline="Chain10", input={"n": i}) for i in range(args.runs)]
            firsts = [StepExecution.objects.get(run=r).pk for r in runs]
            start = time.perf_counter()
            for pk in firsts:
                run_chain(pk, 1, worker="profile", queue="pipelines")
            elapsed = time.perf_counter() - start
            done = PipelineRun.objects.filter(pk__in=[r.pk for r in runs])
            assert done.filter(status=RunStatus.SUCCEEDED).count() == len(runs), "a run failed"
            return elapsed / (10 * len(runs))

        one_batch()  # warm up
        per_step = [one_batch() for _ in range(3)]
        with CaptureQueriesContext(connection) as queries:
            run = run_trigger(pipeline="Chain10", input={})
            first = StepExecution.objects.get(run=run).pk
            before = len(queries)
            run_chain(first, 1, worker="profile", queue="pipelines")
        statements = queries.captured_queries[before:]
        print(f"per step: {statistics.median(per_step) * 1000:.2f} ms (median of 3 batches)")
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
