"""RQ worker and job classes that only ever run the engine's own function, with JSON.

``python manage.py pipelines worker`` starts them (see :func:`start_worker`); so does
``rqworker --worker-class pipelines.engine.worker.PipelineWorker``. They change nothing
global: the project's other queues and ``rqworker`` processes keep their own classes and
serializers. Whatever a job planted in Redis asks for (another function, pickled data,
callbacks, webhooks), it is refused, not run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import redis
from django_rq.utils import reset_db_connections
from django_rq.workers import get_worker
from rq import SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from pipelines.engine.delivery import ENGINE_FUNCTIONS
from pipelines.engine.doctor import ENGINE_MARK
from pipelines.engine.heartbeat import JobHeartbeat
from pipelines.engine.sweeper import SweeperThread
from pipelines.exceptions import UnsafeJobError


class PipelineJob(Job):
    # RQ imports and calls callback functions, and sends webhooks, named by the job itself;
    # the engine never sets them, so a job that carries any was planted: ignore them all.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _execute(self) -> Any:
        smuggled = [
            name
            for name, value in (
                ("on_success", self._success_callback_name),
                ("on_failure", self._failure_callback_name),
                ("on_stopped", self._stopped_callback_name),
                ("webhooks", self.webhooks),
            )
            if value
        ]
        if self.func_name not in ENGINE_FUNCTIONS or self.instance is not None or smuggled:
            extra = f" with {', '.join(smuggled)}" if smuggled else ""
            raise UnsafeJobError(
                f"refused job {self.id}: it names {self.func_name!r}{extra}, but pipeline "
                f"workers only run {' and '.join(ENGINE_FUNCTIONS)}"
            )
        return super()._execute()


logger = logging.getLogger("pipelines.worker")
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class _EngineOnly:
    # Provided by the RQ worker class this is mixed into.
    name: str
    hostname: str | None
    key: str
    connection: Any
    queues: list[Any]
    _stop_requested: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # django-rq's rqworker passes its default (pickle) serializer explicitly.
        kwargs["serializer"] = JSONSerializer
        kwargs["job_class"] = PipelineJob
        super().__init__(*args, **kwargs)
        for queue in self.queues:
            queue.serializer = JSONSerializer
            queue.job_class = PipelineJob

    def register_birth(self, *args: Any, **kwargs: Any) -> None:
        super().register_birth(*args, **kwargs)  # type: ignore[misc]
        self.connection.hset(self.key, ENGINE_MARK, "1")

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Recovery runs inside every worker: no cron job to remember. The lease makes sure
        # only one of them sweeps at a time.
        sweeper = SweeperThread(holder=f"{self.name}@{self.hostname}")
        sweeper.start()
        try:
            while True:
                try:
                    return super().work(*args, **kwargs)  # type: ignore[misc]
                except REDIS_ERRORS as exc:
                    if self._stop_requested:
                        raise
                    # Registering (or unregistering) failed: start over under a new name,
                    # since a restarted Redis may still hold the old one.
                    logger.warning("lost Redis while starting or stopping (%s)", exc)
                    self._wait_for_redis()
                    self.name = uuid4().hex
        finally:
            sweeper.stopping.set()
            sweeper.join(timeout=10)

    def _wait_for_redis(self) -> None:
        delay = 0.5
        while not self._stop_requested:
            try:
                self.connection.ping()
            except REDIS_ERRORS:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            try:
                if not self.connection.exists(self.key):
                    self.register_birth()  # Redis restarted empty
            except Exception:
                logger.debug("could not re-register the worker", exc_info=True)
            logger.warning("Redis is back")
            return

    def _survive_redis(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # RQ's loop quits on any Redis error. A pipeline worker waits for Redis to come back
        # instead: the database still says what must run, and the sweeper restores lost jobs.
        try:
            return method(*args, **kwargs)
        except REDIS_ERRORS as exc:
            logger.warning("lost Redis in %s (%s); waiting for it", method.__name__, exc)
            self._wait_for_redis()
            return None

    def execute_job(self, *args: Any, **kwargs: Any) -> Any:
        return self._survive_redis(super().execute_job, *args, **kwargs)  # type: ignore[misc]

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        return self._survive_redis(super().heartbeat, *args, **kwargs)  # type: ignore[misc]

    def check_for_suspension(self, *args: Any, **kwargs: Any) -> Any:
        return self._survive_redis(super().check_for_suspension, *args, **kwargs)  # type: ignore[misc]

    def run_maintenance_tasks(self, *args: Any, **kwargs: Any) -> Any:
        return self._survive_redis(super().run_maintenance_tasks, *args, **kwargs)  # type: ignore[misc]


class PipelineWorker(_EngineOnly, Worker):
    """Forks a work horse per job (crash isolation); the default.

    This process heartbeats for the executions its work horse runs (see
    :class:`~pipelines.engine.heartbeat.JobHeartbeat`): a step body that holds the GIL,
    or otherwise starves the horse's own heartbeat thread, is still seen alive, for as
    long as the horse lives (RQ kills it past the job's timeout)."""

    _job_heartbeat: JobHeartbeat

    def work(self, *args: Any, **kwargs: Any) -> bool:
        with JobHeartbeat() as self._job_heartbeat:
            return super().work(*args, **kwargs)

    def execute_job(self, job: Any, queue: Any) -> Any:
        with self._job_heartbeat.watch(job.id):
            return super().execute_job(job, queue)


class PipelineSimpleWorker(_EngineOnly, SimpleWorker):
    """Runs jobs in the worker process itself: faster, less isolated."""


def start_worker(
    queues: list[str],
    *,
    simple: bool = False,
    burst: bool = False,
    with_scheduler: bool = True,
    name: str | None = None,
    worker_ttl: int = 420,
    max_jobs: int | None = None,
    max_idle_time: int | None = None,
    logging_level: str = "INFO",
) -> bool:
    """Run a pipelines worker on ``queues`` until it is stopped (or, with ``burst``, until
    they are empty). The scheduler is on by default: retries are delayed jobs."""
    worker_class: type[Any] = PipelineSimpleWorker if simple else PipelineWorker
    # A name people can read on the run page and the overview (RQ's default is a bare
    # uuid): the host and pid, and a suffix that keeps it unique after a pid is reused.
    name = name or f"{socket.gethostname()}.{os.getpid()}.{uuid4().hex[:6]}"
    worker = get_worker(
        *queues,
        worker_class=worker_class,
        job_class=PipelineJob,
        serializer=JSONSerializer,
        name=name,
        worker_ttl=worker_ttl,
    )
    # A forked work horse must not share the parent's database connection.
    reset_db_connections()
    return bool(
        worker.work(
            burst=burst,
            with_scheduler=with_scheduler,
            logging_level=logging_level,
            max_jobs=max_jobs,
            max_idle_time=max_idle_time,
        )
    )
