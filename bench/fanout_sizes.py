"""Expand/collapse at each size, against bare RQ (a job per item plus a dependent gather)
on the same machine, one SimpleWorker each, medians of ``--repeat`` runs.

    python bench/fanout_sizes.py [--sizes 10 100 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_SIZES = (10, 100, 1_000, 10_000)


def measure(sizes: tuple[int, ...], repeat: int) -> list[tuple[int, float, float]]:
    """(size, engine seconds, RQ seconds) for each size, medians of ``repeat``."""
    from bench import throughput
    from bench.env import BenchEnv

    results = []
    with BenchEnv() as env:
        for size in sizes:
            ours = statistics.median(
                throughput.engine_fanout(env, "SimpleWorker", size) for _ in range(repeat)
            )
            rq = statistics.median(
                throughput.rq_fanout(env, "SimpleWorker", size) for _ in range(repeat)
            )
            results.append((size, ours, rq))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'items':>7} {'engine s':>9} {'RQ s':>7} {'ratio':>6}")
    for size, ours, rq in measure(tuple(args.sizes), args.repeat):
        print(f"{size:>7} {ours:>9.3f} {rq:>7.3f} {ours / rq:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
