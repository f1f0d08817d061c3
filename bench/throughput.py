"""Per-step overhead (chains) and fan-out/fan-in, for the engine, bare RQ and Celery.

Each measurement starts one warm worker of the kind measured, then times from submitting
the work to its completion.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC
from typing import Any

from bench.env import BenchEnv, wait

ENGINE_WORKERS = {
    "SimpleWorker": "pipelines.engine.worker.PipelineSimpleWorker",
    "Worker": "pipelines.engine.worker.PipelineWorker",
}
RQ_WORKERS = {"SimpleWorker": "rq.worker.SimpleWorker", "Worker": "rq.worker.Worker"}


def _start_rq_worker(env: BenchEnv, args: list[str], name: str) -> Any:
    """Start an RQ worker (the engine's or bare RQ's, both on the private Redis) and wait
    until it has registered, failing at once if it exits."""
    from rq import Worker

    conn = env.redis.client()
    before = len(Worker.all(connection=conn))
    proc = env.start(args, name)

    def registered() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited; its log is {env.tmp / name}.log")
        return len(Worker.all(connection=conn)) > before

    wait(registered, 60)
    return proc


def _engine_worker(env: BenchEnv, kind: str) -> Any:
    """A warm engine worker: it has run a small expand (its database connection, code
    paths and caches are in place), as a worker that has been serving for a while has."""
    from bench.pipelines import Fanout
    from pipelines.models import PipelineRun

    args = ["manage.py", "rqworker", "pipelines", "--worker-class", ENGINE_WORKERS[kind]]
    proc = _start_rq_worker(env, [sys.executable, *args], f"engine-{kind}")
    warm = Fanout.trigger({"count": 2})
    wait(lambda: PipelineRun.objects.filter(pk=warm.pk, status="succeeded").exists(), 60)
    return proc


def _rq_worker(env: BenchEnv, kind: str) -> Any:
    """A warm bare RQ worker: it has run a no-op job."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    args = ["-m", "rq.cli", "worker", "-u", env.redis.url, "--worker-class", RQ_WORKERS[kind]]
    args += ["--serializer", "rq.serializers.JSONSerializer", "bench"]
    proc = _start_rq_worker(env, [sys.executable, *args], f"rq-{kind}")
    queue = Queue("bench", connection=env.redis.client(), serializer=JSONSerializer)
    warm = queue.enqueue("bench.jobs.noop", args=(0,))
    wait(lambda: warm.get_status(refresh=True) == "finished", 60)
    return proc


def _celery_worker(env: BenchEnv) -> Any:
    from bench.celery_app import app

    proc = env.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "celery",
            "--loglevel=WARNING",
        ],
        "celery",
    )
    wait(lambda: bool(app.control.ping(timeout=0.5)), 60, interval=0.5)
    from bench.celery_app import noop

    noop.delay(0).get(timeout=60)  # warm, like the others
    return proc


def engine_chains(env: BenchEnv, kind: str, runs: int) -> float:
    """Seconds for ``runs`` runs of the 10-step Chain10."""
    from bench.pipelines import Chain10
    from pipelines.models import PipelineRun

    proc = _engine_worker(env, kind)
    try:
        start = time.perf_counter()
        ids = [Chain10.trigger({"i": i}).pk for i in range(runs)]
        wait(lambda: PipelineRun.objects.filter(pk__in=ids, status="succeeded").count() == runs)
        return time.perf_counter() - start
    finally:
        env.stop(proc)


def rq_jobs(env: BenchEnv, kind: str, jobs: int) -> float:
    from rq import Queue
    from rq.registry import FinishedJobRegistry
    from rq.serializers import JSONSerializer

    queue = Queue("bench", connection=env.redis.client(), serializer=JSONSerializer)
    finished = FinishedJobRegistry(queue=queue)
    proc = _rq_worker(env, kind)
    before = finished.count
    try:
        start = time.perf_counter()
        queue.enqueue_many(
            [Queue.prepare_data("bench.jobs.noop", args=({"i": i},)) for i in range(jobs)]
        )
        wait(lambda: finished.count - before >= jobs)
        return time.perf_counter() - start
    finally:
        env.stop(proc)


def celery_chains(env: BenchEnv, runs: int, length: int = 10) -> float:
    from celery import chain

    from bench.celery_app import noop

    proc = _celery_worker(env)
    try:
        start = time.perf_counter()
        results = [
            chain(*[noop.s({"i": i})] + [noop.s() for _ in range(length - 1)])()
            for i in range(runs)
        ]
        wait(lambda: all(r.ready() for r in results), interval=0.05)
        return time.perf_counter() - start
    finally:
        env.stop(proc)


# Small expands finish in tens of milliseconds, less than a few polls: both sides are
# timed from the wall clock at the start to the end time the system itself recorded (the
# run's finished_at by the database's clock, the gather job's ended_at by the RQ worker's),
# all on this one machine, so that the poll's granularity does not decide the comparison.


def engine_fanout(env: BenchEnv, kind: str, count: int) -> float:
    from bench.pipelines import Fanout
    from pipelines.models import PipelineRun

    proc = _engine_worker(env, kind)
    try:
        start = time.time()
        run = Fanout.trigger({"count": count})
        wait(
            lambda: PipelineRun.objects.filter(
                pk=run.pk, status__in=["succeeded", "failed"]
            ).exists()
        )
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        assert run.output == count
        assert run.finished_at is not None
        return run.finished_at.timestamp() - start
    finally:
        env.stop(proc)


def rq_fanout(env: BenchEnv, kind: str, count: int) -> float:
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("bench", connection=env.redis.client(), serializer=JSONSerializer)
    proc = _rq_worker(env, kind)
    try:
        start = time.time()
        items = queue.enqueue_many(
            [Queue.prepare_data("bench.jobs.noop", args=(i,)) for i in range(count)]
        )
        gather = queue.enqueue("bench.jobs.gather", depends_on=items)
        wait(lambda: gather.get_status(refresh=True) == "finished")
        gather.refresh()
        assert gather.ended_at is not None
        return gather.ended_at.replace(tzinfo=gather.ended_at.tzinfo or UTC).timestamp() - start
    finally:
        env.stop(proc)


def celery_chord(env: BenchEnv, count: int) -> float:
    from celery import chord

    from bench.celery_app import gather, noop

    proc = _celery_worker(env)
    try:
        start = time.perf_counter()
        result = chord(noop.s(i) for i in range(count))(gather.s())
        assert result.get(timeout=1200) == count
        return time.perf_counter() - start
    finally:
        env.stop(proc)
