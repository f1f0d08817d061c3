"""A running attempt proves it is alive by touching ``heartbeat_at`` from a thread.

When its process dies (SIGKILL, OOM, a lost machine) the heartbeat stops, and the sweeper
reclaims the execution as a new attempt. A slow but healthy step keeps heartbeating and
is never reclaimed. The beat writes the database's own time (:mod:`.clock`), which the
sweeper compares with the database's time too: no two hosts' clocks are ever compared.

Two beaters:

* :class:`Heartbeat` runs in the process that runs the step body. One thread serves a
  whole RQ job: a job that runs a chain of steps inline points it at each step in turn
  (:meth:`Heartbeat.watch`). A body that holds the GIL for long (one long C call) starves
  it; so does a stopped process.
* :class:`JobHeartbeat` runs in the forking worker's own process and beats for every
  execution its work horse is running, found by the horse's RQ job id (an inline
  successor or a batch item is claimed under the job id of the job that runs it). The
  step's code runs in another process and cannot starve it; it stops when the work horse
  exits, however it exits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from django.db import close_old_connections, connection

from pipelines.conf import get_settings
from pipelines.engine import clock
from pipelines.models import StepExecution, StepStatus

logger = logging.getLogger("pipelines.heartbeat")


class _Beater:
    """A daemon thread that, every heartbeat interval, touches the executions ``_rows``
    names (if any)."""

    name = "pipelines-heartbeat"

    def __init__(self) -> None:
        self.interval = get_settings().heartbeat_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=self.name, daemon=True)

    def _rows(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                rows = self._rows()  # one read: the owner may switch it meanwhile
                if rows is None:
                    continue
                try:
                    rows.filter(status=StepStatus.RUNNING).update(heartbeat_at=clock.now())
                except Exception:
                    # A missed beat is not fatal; several in a row get the step reclaimed,
                    # which is right if the database is really gone from this host.
                    logger.warning("heartbeat failed", exc_info=True)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection


class Heartbeat(_Beater):
    """Beats for the attempt the runner is executing in this process."""

    def __init__(self) -> None:
        super().__init__()
        self._target: tuple[int, int] | None = None

    def _rows(self) -> Any:
        target = self._target
        if target is None:
            return None
        return StepExecution.objects.filter(pk=target[0], attempt=target[1])

    @contextlib.contextmanager
    def watch(self, execution_id: int, attempt: int) -> Iterator[None]:
        """Beat for this attempt while the block runs."""
        self._target = (execution_id, attempt)
        try:
            yield
        finally:
            self._target = None


class JobHeartbeat(_Beater):
    """Beats, from a forking worker's own process, for what its work horse runs."""

    name = "pipelines-job-heartbeat"

    def __init__(self) -> None:
        super().__init__()
        self._job: str | None = None

    def _rows(self) -> Any:
        job = self._job
        if job is None:
            return None
        return StepExecution.objects.filter(rq_job=job)

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[None]:
        """Beat for the executions claimed under ``job_id`` while the block runs (while
        the work horse that runs the job is alive)."""
        self._job = job_id
        try:
            yield
        finally:
            self._job = None
