"""Running a successor inline, in the RQ job of the step before it.

When a step commits and its single successor is on the queue this worker serves, the
worker runs the successor itself, skipping a round trip through Redis and RQ. The commit
that creates the successor also claims it (``running``, this worker, a fresh heartbeat),
so the next step needs no claim statement; a worker that dies before running it leaves
a running execution with a heartbeat that goes stale, which the sweeper reclaims.

Such a successor does not pass the claim's "has the run ended?" check: the commit that
created it saw the run active under the run's lock. A cancel that lands between that
commit and the successor's body lets the body start; it sees ``self.cancelled``, its
late success is compensated like any other, and the sweeper stops it after the grace.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.utils import timezone

from pipelines.dsl import Graph
from pipelines.engine.advance import delivery
from pipelines.engine.enqueue import enqueue
from pipelines.engine.transitions import step_transition
from pipelines.models import StepExecution, StepStatus

logger = logging.getLogger("pipelines.runner")
COMMIT_MARGIN = 30  # seconds; Step.job_timeout() gives every job 60 over its step timeout


@dataclass(frozen=True)
class Keep:
    """Who may run a successor inline, and for how long (monotonic deadlines)."""

    queue: str
    worker: str
    job_id: str
    deadline: float  # PIPELINES_EAGER_SECONDS after the job started
    job_deadline: float | None  # the RQ job's own timeout: RQ kills the job past it

    def takes(self, execution: StepExecution, graph: Graph) -> bool:
        """Whether this worker runs ``execution`` next: same queue, and it fits in both
        budgets as they stand now (at the commit, after the previous body ran)."""
        if execution.queue != self.queue:
            return False
        now = time.monotonic()
        if now >= self.deadline:
            return False
        # The body is stopped at its step timeout; the commit needs far less than the
        # margin. Past the job's deadline RQ would kill the work horse mid-step.
        needs = graph.node(execution.node).step.step_timeout() + COMMIT_MARGIN
        return self.job_deadline is None or now + needs <= self.job_deadline

    def claim(self, execution: StepExecution) -> None:
        """Mark a not yet inserted execution as claimed by this worker: the commit that
        creates it is its claim."""
        now = timezone.now()
        execution.status = StepStatus.RUNNING
        execution.started_at = now
        execution.heartbeat_at = now
        execution.worker = self.worker[:200]
        execution.rq_job = self.job_id[:200]


def release(execution: StepExecution, graph: Graph) -> None:
    """Hand a claimed successor that will not run here after all back to the queue."""
    try:
        if step_transition(
            execution.pk,
            at_attempt=execution.attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.ENQUEUED,
            started_at=None,
            heartbeat_at=None,
            worker="",
            rq_job="",
            enqueued_at=timezone.now(),
        ):
            enqueue([delivery(execution, graph)])
    except Exception:
        # Its heartbeat is stale soon, and the sweeper reclaims it then.
        logger.exception("could not hand execution %s back to the queue", execution.pk)
