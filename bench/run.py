"""All benchmarks in one run, side by side with bare RQ and Celery on the same machine.

    python bench/run.py            # the full set (several minutes)
    python bench/run.py --quick    # small sizes, well under a minute (CI runs this)

Prints one table of medians and ratios, and the environment. Needs PostgreSQL
(BENCH_DATABASE_URL) and the redis-server binary; makes and drops its own database and
Redis. No timing here is asserted: correctness checks (every key stored, every run
succeeded) are.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Sizes:
    runs: int  # chains of 10 steps
    fan: tuple[int, ...]  # expand sizes, smallest to biggest
    procs: int  # context writers
    keys: int  # keys per writer
    triggers: int
    dash: tuple[int, int]  # run page: steps, keys
    repeat: int  # medians of this many measurements


FULL = Sizes(
    runs=100,
    fan=(10, 100, 1_000, 10_000),
    procs=16,
    keys=200,
    triggers=1000,
    dash=(10_000, 1_000),
    repeat=3,
)
QUICK = Sizes(
    runs=10, fan=(10, 100, 1_000), procs=4, keys=25, triggers=50, dash=(1_000, 100), repeat=1
)


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description="pipelines benchmarks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["chains", "fanout", "contention", "triggers", "dashboard"],
    )
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    from bench import scenarios, throughput
    from bench.env import BenchEnv

    rows: list[tuple[str, str, str, str, str]] = []

    def row(metric: str, ours: str, base: str, ratio: str, target: str = "") -> None:
        rows.append((metric, ours, base, ratio, target))
        print(f"  {metric}: {ours} vs {base} ({ratio}) {target}", flush=True)

    with BenchEnv() as env:
        repeat = size.repeat
        if "chains" not in args.skip:
            steps = size.runs * 10
            celery = steps / median(lambda: throughput.celery_chains(env, size.runs), repeat)
            engine: dict[str, float] = {}
            for kind in ("SimpleWorker", "Worker"):
                ours = engine[kind] = steps / median(
                    partial(throughput.engine_chains, env, kind, size.runs), repeat
                )
                rq = steps / median(partial(throughput.rq_jobs, env, kind, steps), repeat)
                row(
                    f"chains {size.runs}x10, {kind} (steps/s)",
                    f"{ours:.0f}",
                    f"RQ {rq:.0f}",
                    f"{ours / rq:.2f}x RQ",
                    ">= 0.7x RQ",
                )
            # Celery's solo pool runs tasks in the worker process, as SimpleWorker does;
            # the forking Worker pays a fork per job that Celery does not.
            row(
                f"chains {size.runs}x10 vs Celery solo pool (steps/s)",
                f"{engine['SimpleWorker']:.0f} (Simple) / {engine['Worker']:.0f} (Worker)",
                f"Celery {celery:.0f}",
                f"{engine['SimpleWorker'] / celery:.2f}x Celery (Simple)",
                "faster than Celery",
            )
        if "fanout" not in args.skip:
            times = {}
            for count in size.fan:
                ours = median(partial(throughput.engine_fanout, env, "SimpleWorker", count), repeat)
                rq = median(partial(throughput.rq_fanout, env, "SimpleWorker", count), repeat)
                celery = median(partial(throughput.celery_chord, env, count), repeat)
                times[count] = ours
                row(
                    f"fan-out/in {count} (s, SimpleWorker)",
                    f"{ours:.2f}",
                    f"RQ {rq:.2f} / Celery chord {celery:.2f}",
                    f"{ours / rq:.2f}x RQ time",
                    "<= 1x RQ, < chord",
                )
            small, big = size.fan[-2], size.fan[-1]
            row(
                f"fan-out scaling {small}->{big}",
                f"{times[big] / times[small]:.1f}x",
                f"linear {big // small}x",
                "",
                f"<= {big // small * 1.2:.0f}x",
            )
        if "contention" not in args.skip:
            writes = size.procs * size.keys
            ours = scenarios.contention(env, "engine", size.procs, size.keys)
            raw = scenarios.contention(env, "raw", size.procs, size.keys)
            row(
                f"context {size.procs} procs x {size.keys} keys (writes/s)",
                f"{writes / ours:.0f}",
                f"raw SQL {writes / raw:.0f}",
                f"{ours / raw:.2f}x raw time",
                "<= 2x, 0 anomalies",
            )
        if "triggers" not in args.skip:
            n = size.triggers
            python = n / scenarios.triggers_python(n)
            view = n / scenarios.triggers_view(n)
            row(f"triggers x{n} (runs/s)", f"Python {python:.0f}", f"view {view:.0f}", "")
        if "dashboard" not in args.skip:
            steps, keys = size.dash
            big_t, big_q, small_t, small_q = scenarios.dashboard(steps, keys, 5)
            row(
                f"run page {steps} steps / {keys} keys (ms, queries)",
                f"{big_t * 1000:.0f} ms, {big_q} q",
                f"3 steps: {small_t * 1000:.0f} ms, {small_q} q",
                "",
                "< 300 ms, constant queries",
            )

    from django.db import connection

    print()
    print(
        f"environment: Python {platform.python_version()}, Django {version('django')}, "
        f"rq {version('rq')}, celery {version('celery')}, PostgreSQL "
        f"{connection.pg_version if hasattr(connection, 'pg_version') else '?'}, "
        f"Redis server (private), {platform.machine()} {platform.system()}, "
        f"one worker per measurement; mode: {'quick' if args.quick else 'full'}"
    )
    header = ("metric", "engine", "baseline", "ratio", "target")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
