"""What a step's body produced, and what committing it did: the types that travel from
the body to the store and back to the runner."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipelines.context import StepContext
from pipelines.dsl import WaitForEvent
from pipelines.lifecycle import AttemptStatus
from pipelines.models import StepExecution


@dataclass
class Outcome:
    """A body that returned: its output, its staged context writes, and any directive
    (the divert key it chose, or the event it waits for)."""

    output: Any
    context: StepContext
    route: str | None = None
    wait: WaitForEvent | None = None


@dataclass(frozen=True)
class Failure:
    """A body that raised (or whose result could not be used or committed)."""

    error: str
    traceback: str
    retryable: bool = True
    timed_out: bool = False

    @property
    def attempt_status(self) -> AttemptStatus:
        return AttemptStatus.TIMED_OUT if self.timed_out else AttemptStatus.FAILED


class Result(StrEnum):
    """What became of one delivered attempt."""

    SKIPPED = "skipped"  # not claimed: another delivery has it, or its run ended
    SUCCEEDED = "succeeded"
    WAITING = "waiting"  # paused until an event arrives
    RETRYING = "retrying"
    FAILED = "failed"
    STALE = "stale"  # superseded (reclaimed, cancelled): its result was not committed


Items = tuple[tuple[int, int], ...]  # expand items as (execution id, attempt)


@dataclass(frozen=True)
class Kept:
    """What a commit left for this worker to run next, in the same RQ job: a successor it
    created claimed for the worker, the first batch of an expand's items, created
    enqueued under this job's id (each is claimed as it starts), or the batch's next item,
    claimed by an arrival's commit (``ahead``)."""

    successor: StepExecution | None = None
    items: Items = ()
    ahead: StepExecution | None = None


NOTHING_KEPT = Kept()


@dataclass(frozen=True)
class Committed:
    """A committed success, and what the commit kept for this worker to run next."""

    result: Result
    kept: Kept = NOTHING_KEPT
