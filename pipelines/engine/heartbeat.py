"""A running attempt proves it is alive by touching ``heartbeat_at`` from a thread.

When its process dies (SIGKILL, OOM, a lost machine) the heartbeat stops, and the sweeper
reclaims the execution as a new attempt. A slow but healthy step keeps heartbeating and
is never reclaimed.

One thread serves a whole RQ job: a job that runs a chain of steps inline points it at
each step in turn (:meth:`Heartbeat.watch`) instead of starting a thread per step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType

from django.db import close_old_connections, connection
from django.utils import timezone

from pipelines.conf import get_settings
from pipelines.models import StepExecution, StepStatus

logger = logging.getLogger("pipelines.heartbeat")


class Heartbeat:
    def __init__(self) -> None:
        self.interval = get_settings().heartbeat_interval
        self._target: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="pipelines-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
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

    @contextlib.contextmanager
    def watch(self, execution_id: int, attempt: int) -> Iterator[None]:
        """Beat for this attempt while the block runs."""
        self._target = (execution_id, attempt)
        try:
            yield
        finally:
            self._target = None

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                target = self._target  # one read: the runner may switch it meanwhile
                if target is None:
                    continue
                try:
                    StepExecution.objects.filter(
                        pk=target[0], attempt=target[1], status=StepStatus.RUNNING
                    ).update(heartbeat_at=timezone.now())
                except Exception:
                    # A missed beat is not fatal; several in a row get the step reclaimed,
                    # which is right if the database is really gone.
                    logger.warning("heartbeat of execution %s failed", target[0])
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection
