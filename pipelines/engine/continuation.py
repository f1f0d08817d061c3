"""Running a successor inline, in the RQ job of the step before it.

When a step commits and its single successor is on the queue this worker serves, the
worker runs the successor itself, skipping a round trip through Redis and RQ. The commit
that creates the successor also claims it (``running``, this worker, a fresh heartbeat),
so the next step needs no claim statement; a worker that dies before running it leaves
a running execution with a heartbeat that goes stale, which the sweeper reclaims. When
the commit expands, the worker likewise runs the first batch of items itself; those stay
enqueued under this job's id until each is claimed (see ``sweeper``). On PostgreSQL the
commit of one item's arrival claims the next item of the batch, so the items of a batch
cost one statement each.

Such a successor does not pass the claim's "has the run ended?" check: the commit that
created it saw the run active under the run's lock. A cancel that lands between that
commit and the successor's body lets the body start; it sees ``self.cancelled``, its
late success is compensated like any other, and the sweeper stops it after the grace.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pipelines.conf import get_settings
from pipelines.dsl import Graph
from pipelines.engine import clock
from pipelines.engine.delivery import delivery, enqueue
from pipelines.engine.transitions import step_transition
from pipelines.lifecycle import StepStatus
from pipelines.models import StepExecution

logger = logging.getLogger("pipelines.runner")
COMMIT_MARGIN = 30  # seconds; Step.job_timeout() gives every job 60 over its step timeout


@dataclass(frozen=True)
class NextItem:
    """The batch item a job runs after the one running now, if it still fits then."""

    execution_id: int
    attempt: int
    step_timeout: float


class Budget:
    """How long one RQ job may go on running steps itself: PIPELINES_EAGER_STEPS steps
    and PIPELINES_EAGER_SECONDS seconds, within the job's own timeout (``job_budget``
    seconds from now; past it RQ kills the work horse mid-step)."""

    def __init__(
        self, queue: str | None, worker: str, job_id: str, job_budget: float | None
    ) -> None:
        conf = get_settings()
        started = time.monotonic()
        self.steps_left = max(1, conf.eager_steps)
        self.queue = queue
        self.worker = worker
        self.job_id = job_id
        self.deadline = started + conf.eager_seconds
        self.job_deadline = None if job_budget is None else started + job_budget
        # Set by the batch loop while an item runs: the item after it.
        self.next_item: NextItem | None = None

    def fits(self, step_timeout: float) -> bool:
        """Whether a step whose body may take ``step_timeout`` still fits, now. The body
        is stopped at its step timeout; its commit needs far less than the margin."""
        now = time.monotonic()
        if now >= self.deadline:
            return False
        return self.job_deadline is None or now + step_timeout + COMMIT_MARGIN <= self.job_deadline

    def fits_another(self, step_timeout: float) -> bool:
        """Whether a batch goes on with its next item (``steps_left`` counts the steps
        still allowed, the ones already run taken off)."""
        return self.steps_left >= 1 and self.fits(step_timeout)

    def claims_ahead(self) -> NextItem | None:
        """The next batch item, if the commit of the running one's arrival may claim it for
        this worker: it fits the budget once the running step is counted."""
        item = self.next_item
        if item is None or self.steps_left < 2:
            return None
        return item if self.fits_another(item.step_timeout) else None

    def keep(self) -> Budget | None:
        """This budget, as the one a commit may keep a successor or expand items under,
        if the step budget allows one more step here after the one running (which
        ``steps_left`` still counts)."""
        if self.queue is None or self.steps_left <= 1:
            return None
        return self

    def takes(self, execution: StepExecution, graph: Graph) -> bool:
        """Whether this worker runs ``execution`` next: same queue, and it fits the budget
        as it stands now (at the commit, after the previous body ran)."""
        step = graph.node(execution.node).step
        return execution.queue == self.queue and self.fits(step.step_timeout())


def release(execution: StepExecution, graph: Graph | None) -> None:
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
            enqueued_at=clock.now(),
        ):
            enqueue([delivery(execution, graph)])
    except Exception:
        # Its heartbeat is stale soon, and the sweeper reclaims it then.
        logger.exception("could not hand execution %s back to the queue", execution.pk)
