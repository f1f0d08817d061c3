"""Pure decisions: what follows a step's success, a join's completion, or a failure.

Nothing here touches the database or Redis. The stores (:mod:`pipelines.engine.store`)
apply these decisions; because both stores apply the same decision objects, a rule about
what runs next lives here once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from pipelines.conf import PipelineSettings, get_settings
from pipelines.dsl import Chain, Divert, Divide, End, Expand, Graph, WaitForEvent
from pipelines.exceptions import OutputValueError
from pipelines.lifecycle import StepKind
from pipelines.step import RetryPolicy
from pipelines.values import check_json

# --- What follows a success ---------------------------------------------------------------


@dataclass(frozen=True)
class Next:
    """One successor in the finished step's own frame (chain, divert, converge, or the
    join of an empty expand). ``route`` is the divert key chosen, saved on the step."""

    node: str
    payload: Any
    route: str = ""


@dataclass(frozen=True)
class Finish:
    """The run's last step succeeded: the run succeeds with ``output``."""

    output: Any


@dataclass(frozen=True)
class Fork:
    """Divide or expand: open a barrier for ``join`` and start one execution per branch,
    ``(node, payload)`` in branch order. Expand items share RQ jobs of ``batch_size``."""

    join: str
    branches: tuple[tuple[str, Any], ...]
    batch_size: int = 1


@dataclass(frozen=True)
class Arrive:
    """A divide/expand branch ended: count it in at its barrier (see :func:`join`)."""


@dataclass(frozen=True)
class Halt:
    """Nothing can follow: the run fails with ``reason``."""

    reason: str


@dataclass(frozen=True)
class Pause:
    """The step waits for event ``name`` (``timeout`` seconds, or forever)."""

    name: str
    timeout: float | None


@dataclass(frozen=True)
class NextCompensation:
    """A compensation finished: the next one starts (newest completion first)."""


@dataclass(frozen=True)
class Nothing:
    """The halt handler finished: nothing follows it."""


Decision = Next | Finish | Fork | Arrive | Halt | Pause | NextCompensation | Nothing


class Placed(Protocol):
    """Where an execution stands in its graph (a StepExecution row has these)."""

    node: str
    kind: str
    barrier_id: int | None


def for_execution(
    graph: Graph,
    execution: Placed,
    output: Any,
    route: str | None = None,
    wait: WaitForEvent | None = None,
    *,
    workers: int = 0,
) -> Decision:
    """:func:`after_success` for an execution, with the settings in force."""
    return after_success(
        graph,
        execution.node,
        output,
        route,
        kind=execution.kind,
        wait=wait,
        in_branch=execution.barrier_id is not None,
        conf=get_settings(),
        workers=workers,
    )


def expand_queue(graph: Graph, node_id: str) -> str | None:
    """The queue an expand at ``node_id`` sends its items to (None: not an expand)."""
    transition = graph.node(node_id).transition
    if not isinstance(transition, Expand):
        return None
    return str(graph.node(transition.entry).step.queue_name())


def after_success(
    graph: Graph,
    node_id: str,
    output: Any,
    route: str | None,
    *,
    kind: str = StepKind.STEP,
    wait: WaitForEvent | None = None,
    in_branch: bool,
    conf: PipelineSettings,
    workers: int = 0,
) -> Decision:
    """What follows a step at ``node_id`` that returned ``output`` (and chose ``route``,
    for a divert, or ``wait``). ``in_branch``: the step runs inside a divide/expand
    branch. ``workers``: how many workers serve an expand's queue (0: unknown)."""
    if kind == StepKind.COMPENSATION:
        return NextCompensation()
    if kind == StepKind.HALT:
        return Nothing()
    if wait is not None:
        return Pause(wait.name, wait.timeout)
    transition = graph.node(node_id).transition
    if isinstance(transition, Chain):
        return Next(transition.next, output)
    if isinstance(transition, Divert):
        routes = dict(transition.routes)
        key = route if route is not None else (output if isinstance(output, str) else None)
        chosen = key if key in routes else "otherwise"
        return Next(routes.get(chosen, transition.otherwise), output, route=chosen)
    if isinstance(transition, Divide):
        return Fork(transition.join, tuple((entry, output) for entry in transition.branches))
    if isinstance(transition, Expand):
        if len(output) > conf.max_expand:
            return Halt(
                f"step {node_id} returned {len(output)} elements to expand, over the limit of "
                f"{conf.max_expand} (PIPELINES_MAX_EXPAND)"
            )
        if not output:
            return Next(transition.join, [])
        return Fork(
            transition.join,
            tuple((transition.entry, item) for item in output),
            BatchPolicy.for_workers(conf.expand_batch, conf.eager_steps, workers).size(len(output)),
        )
    assert isinstance(transition, End)
    return Arrive() if in_branch else Finish(output)


@dataclass(frozen=True)
class BatchPolicy:
    """Items per RQ job for an expand: one job per item costs an RQ round trip per item,
    which dominates fan-outs, so items share jobs of up to ``expand_batch`` items, while
    every expand keeps at least ``min_jobs`` jobs so that the workers can share it. The
    worker that expands runs the first job's items itself, next (``OrmStore.create``);
    every other worker serving the queue gets two jobs' worth: ``2 * workers - 1`` jobs,
    or 64 when the number of workers is unknown. A batch runs its items under the
    continuation budget (``eager_steps`` > 1, PIPELINES_EAGER_SECONDS) and hands the rest
    back as jobs of their own when it runs out, so a batch of slow items soon spreads over
    the workers again."""

    expand_batch: int
    eager_steps: int
    min_jobs: int = 64

    @classmethod
    def for_workers(cls, expand_batch: int, eager_steps: int, workers: int) -> BatchPolicy:
        return cls(expand_batch, eager_steps, 2 * workers - 1 if workers > 0 else 64)

    def size(self, items: int) -> int:
        if self.eager_steps <= 1:
            return 1
        return max(1, min(self.expand_batch, items // self.min_jobs))


# --- What a completed barrier starts --------------------------------------------------------


@dataclass(frozen=True)
class Join:
    """Start ``node`` with the branches' outputs in branch order, in the frame of the step
    that divided."""

    node: str
    payload: list[Any]


def join(node: str, expected: int, outputs: dict[int, Any]) -> Join | Halt:
    """The join a complete barrier starts. Each output passed the size limits alone;
    together they may not, and then the run halts."""
    ordered = [outputs.get(i) for i in range(expected)]
    try:
        check_json(ordered, where=f"joined outputs for {node}", error=OutputValueError)
    except OutputValueError as exc:
        return Halt(str(exc))
    return Join(node, ordered)


def barrier_complete(arrived: int, expected: int, fired: bool) -> bool:
    """The arrival that brings the count to ``expected`` fires the join, exactly once."""
    return arrived >= expected and not fired


# --- What follows a failure -----------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """Run the step again as attempt ``attempt`` after ``delay`` seconds."""

    attempt: int
    delay: float


@dataclass(frozen=True)
class GiveUp:
    """No retry: the execution fails for good (the run halts, or, for a compensation,
    the next compensation starts)."""


FailureDecision = Retry | GiveUp


def after_failure(
    policy: RetryPolicy | None,
    attempt: int,
    *,
    may_retry: bool,
    rand: random.Random | None = None,
) -> FailureDecision:
    """``policy`` None: the failure is not retryable (a deterministic error, or the step
    is no longer in the graph). ``may_retry`` False: the run ended, so a step of it does
    not start again."""
    if policy is None or not may_retry or attempt > policy.retries:
        return GiveUp()
    return Retry(attempt + 1, retry_delay(policy, attempt, rand))


def retry_delay(policy: RetryPolicy, attempt: int, rand: random.Random | None = None) -> float:
    """Exponential backoff for the retry after ``attempt``, capped, with equal jitter so
    that many steps failing together do not retry in lockstep."""
    delay = min(policy.backoff_max, policy.backoff * (2 ** (attempt - 1)))
    if policy.jitter and delay > 0:
        delay = delay / 2 + (rand or random).uniform(0, delay / 2)
    return delay


def final_failure_reason(node: str, attempt: int, error: str) -> str:
    attempts = f"{attempt} attempt{'s' if attempt > 1 else ''}"
    return f"step {node} failed after {attempts}: {error}"
