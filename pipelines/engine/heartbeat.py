"""A running attempt proves it is alive by touching ``heartbeat_at`` from a thread.

When its process dies (SIGKILL, OOM, a lost machine) the heartbeat stops, and the sweeper
reclaims the execution as a new attempt. A slow but healthy step keeps heartbeating and
is never reclaimed.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from django.db import close_old_connections, connection
from django.utils import timezone

from pipelines.conf import get_settings
from pipelines.models import StepExecution, StepStatus

logger = logging.getLogger("pipelines.heartbeat")


class Heartbeat:
    def __init__(self, execution_id: int, attempt: int) -> None:
        self.execution_id = execution_id
        self.attempt = attempt
        self.interval = get_settings().heartbeat_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"pipelines-heartbeat-{execution_id}", daemon=True
        )

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

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    StepExecution.objects.filter(
                        pk=self.execution_id, attempt=self.attempt, status=StepStatus.RUNNING
                    ).update(heartbeat_at=timezone.now())
                except Exception:
                    # A missed beat is not fatal; several in a row get the step reclaimed,
                    # which is right if the database is really gone.
                    logger.warning("heartbeat of execution %s failed", self.execution_id)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection
