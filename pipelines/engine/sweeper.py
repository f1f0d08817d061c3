"""Recovery: the database says what must run; the sweeper makes it so.

One pass:

* **dead workers**: a running execution whose heartbeat stopped is reclaimed as a new
  attempt, until its crash budget is spent, then its run halts with that reason;
* **lost jobs**: an execution enqueued (or due for retry) a while ago whose job is not
  in Redis (flushed, or Redis was down when the step was enqueued), or failed there, or
  was taken off its queue by a worker that died before starting it, is enqueued again; a
  duplicate is harmless, the claim lets only one through. A job RQ has started is not
  lost while the worker running it is registered (its claim is under way), unless this
  sweeper has seen it started for the reclaim time and the claim never came. An expand
  item waits for the job its ``rq_job`` names (its batch job, or the job of the step that
  expanded, which runs the first batch itself) likewise, but not for longer than a step
  is given to heartbeat: a batch stuck on a slow item hands the rest on;
* **event timeouts**: a step waiting past its deadline fails;
* **cancel grace**: a step still running in a cancelled run is stopped.

Every "how long ago" compares timestamps taken from the database's clock
(:mod:`.clock`). Every action is fenced like a worker's, so a pass racing a worker (or
another pass) cannot do anything twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Q
from rq.command import send_stop_job_command
from rq.intermediate_queue import IntermediateQueue
from rq.queue import Queue
from rq.worker import Worker

from pipelines import definitions
from pipelines.conf import get_settings
from pipelines.engine import clock, doctor, lease
from pipelines.engine.delivery import (
    Delivery,
    batch_of,
    delivery,
    enqueue,
    enqueue_on_commit,
    get_queue,
    job_id,
)
from pipelines.engine.halting import after_final_failure
from pipelines.engine.rows import lock_run, record_attempt
from pipelines.engine.transitions import step_transition
from pipelines.engine.witness import witness
from pipelines.models import (
    AttemptStatus,
    RunStatus,
    StepExecution,
    StepStatus,
)

logger = logging.getLogger("pipelines.sweeper")
BATCH = 500
ALIVE_JOB_STATUSES = {b"queued", b"scheduled", b"deferred"}


@dataclass
class SweepReport:
    reclaimed: list[int] = field(default_factory=list)
    crashed_out: list[int] = field(default_factory=list)
    reenqueued: list[int] = field(default_factory=list)
    timed_out_waits: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{name.replace('_', ' ')}: {len(ids)}" for name, ids in vars(self).items()]
        return ", ".join(parts)


@dataclass
class SweepMemory:
    """What a sweeper remembers between its passes: since when (its own monotonic clock,
    a duration on one host) it has seen each job started in RQ whose executions still
    wait, and which queued jobs it saw taken off their queue but not started."""

    started: dict[str, float] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)


def sweep(*, reclaim: bool = True, memory: SweepMemory | None = None) -> SweepReport:
    """One pass. ``reclaim=False`` leaves silent running steps alone (see
    :mod:`.witness`: after an outage their workers first get time to beat)."""
    report = SweepReport()
    if reclaim:
        _reclaim_dead(report)
    _reenqueue_lost(report, memory or SweepMemory())
    _expire_waits(report)
    _stop_cancelled(report)
    return report


def _silent() -> Q:
    """Running, and no heartbeat for the reclaim time, by the database's clock."""
    return Q(status=StepStatus.RUNNING, heartbeat_at__lt=clock.ago(get_settings().reclaim_after))


def _reclaim_dead(report: SweepReport) -> None:
    # heartbeat_at is set by the claim, so every running execution has one.
    rows = StepExecution.objects.filter(_silent()).select_related("run").order_by("id")[:BATCH]
    _each(rows, "reclaim", lambda execution: _reclaim_one(execution, report))


def _each(rows: Any, what: str, action: Any) -> None:
    """Act on each row in its own transaction: one bad row (a constraint error, a vanished
    pipeline) is logged and skipped, never blocks the rest of the pass."""
    for row in rows:
        try:
            action(row)
        except Exception:
            logger.exception("sweeper could not %s execution %s; moving on", what, row.pk)
            close_old_connections()


def _reclaim_one(execution: StepExecution, report: SweepReport) -> None:
    conf = get_settings()
    with transaction.atomic():
        run = lock_run(execution.run_id)
        attempt = execution.attempt
        crashes = execution.crash_count + 1
        beat = execution.heartbeat_at
        note = "worker died: no heartbeat" + (
            f" since {beat.isoformat(timespec='seconds')}" if beat else ""
        )
        out_of_budget = crashes > conf.crash_budget
        moved = step_transition(
            execution.pk,
            at_attempt=attempt,
            current=[StepStatus.RUNNING],
            # Still silent now that we hold the lock: a resumed heartbeat wins.
            where={"heartbeat_at__lt": clock.ago(conf.reclaim_after)},
            to=StepStatus.FAILED if out_of_budget else StepStatus.ENQUEUED,
            crash_count=crashes,
            **(
                {"finished_at": clock.now(), "error": note}
                if out_of_budget
                else {"attempt": attempt + 1, "enqueued_at": clock.now(), "error": note}
            ),
        )
        if not moved:
            return
        record_attempt(execution, attempt, AttemptStatus.CRASHED, error=note)
        if out_of_budget:
            reason = (
                f"killed its worker {crashes} times (crash budget "
                f"PIPELINES_CRASH_BUDGET={conf.crash_budget}); last: {note}"
            )
            after_final_failure(run, definitions.graph_or_none(run), execution, reason, attempt)
            report.crashed_out.append(execution.pk)
        else:
            execution.attempt = attempt + 1
            graph = definitions.graph_or_none(run)
            enqueue_on_commit([delivery(execution, graph, at_front=True)])
            report.reclaimed.append(execution.pk)


def _job_ids(execution: StepExecution) -> list[str]:
    """The jobs that would run this execution: its own, and the one its ``rq_job`` names
    (an expand item's first attempt, until claimed: its batch job, or the job of the step
    that expanded, which keeps the first items to run itself)."""
    ids = [job_id(execution.pk, execution.attempt)]
    batch = batch_of(execution)
    if batch is not None:
        ids.append(batch)
    return ids


@dataclass(frozen=True)
class JobState:
    """A job as Redis has it: RQ's status, and whether a registered worker runs it."""

    status: bytes | None
    worker_alive: bool = False
    # Queued, but in its queue's intermediate list: a worker took it off the queue and has
    # not started it (yet, or ever: it died in between).
    taken: bool = False

    @property
    def running(self) -> bool:
        """RQ started it, and the worker that did is still registered (its key expires a
        minute or so after the worker dies, by Redis's own clock)."""
        return self.status == b"started" and self.worker_alive


def _job_states(ids: list[str]) -> dict[str, JobState]:
    conn = get_queue(get_settings().queue).connection
    with conn.pipeline() as pipe:
        for jid in ids:
            pipe.hmget(f"rq:job:{jid}", "status", "worker_name", "origin")
        found = dict(zip(ids, pipe.execute(), strict=True))
    started = {
        jid: name.decode()
        for jid, (status, name, _) in found.items()
        if status == b"started" and name
    }
    queued = {
        jid: origin.decode()
        for jid, (status, _, origin) in found.items()
        if status == b"queued" and origin
    }
    with conn.pipeline() as pipe:
        for name in started.values():
            pipe.exists(f"{Worker.redis_worker_namespace_prefix}{name}")
        for jid, origin in queued.items():
            key = f"{Queue.redis_queue_namespace_prefix}{origin}"
            pipe.lpos(IntermediateQueue.get_intermediate_queue_key(key), jid)
        answers = pipe.execute()
    alive = dict(zip(started, answers[: len(started)], strict=True))
    taken = dict(zip(queued, answers[len(started) :], strict=True))
    return {
        jid: JobState(status, bool(alive.get(jid)), taken.get(jid) is not None)
        for jid, (status, _, _) in found.items()
    }


def _waiting(jid: str, state: JobState, memory: SweepMemory, seen: SweepMemory) -> bool:
    """Queued (or scheduled, or deferred) and so still to be run by RQ. A worker starts a
    job it took off its queue within milliseconds: one seen taken but not started on two
    passes in a row was taken by a worker that died in between (RQ's own clean-up of such
    jobs comes a minute to ten minutes later)."""
    if state.status not in ALIVE_JOB_STATUSES:
        return False
    if not state.taken:
        return True
    seen.taken.add(jid)
    return jid not in memory.taken


def _alive(jid: str, state: JobState, memory: SweepMemory, seen: SweepMemory) -> bool:
    return _waiting(jid, state, memory, seen) or _started_lately(jid, state, memory, seen)


def _started_lately(jid: str, state: JobState, memory: SweepMemory, seen: SweepMemory) -> bool:
    """Started by a registered worker, and not seen started (by this sweeper) for as long
    as a running step may go without a heartbeat. A job claims its execution right after
    RQ starts it (seconds later under a backlog); one that has not for that long had its
    worker die in between, which RQ notices only when the worker's key expires, minutes
    later. Likewise a batch job: its later items are still enqueued while it works through
    the earlier ones, for seconds (the continuation budget); one running for longer is
    stuck on a slow item, and its other items are better off with jobs of their own."""
    if not state.running:
        return False
    since = seen.started[jid] = seen.started.get(jid) or memory.started.get(jid) or time.monotonic()
    return time.monotonic() - since < get_settings().reclaim_after


def _job_alive(
    states: dict[str, JobState],
    execution: StepExecution,
    memory: SweepMemory,
    seen: SweepMemory,
) -> bool:
    ids = _job_ids(execution)
    if any(_alive(jid, states.get(jid, JobState(None)), memory, seen) for jid in ids[1:]):
        return True
    jid = ids[0]
    state = states.get(jid, JobState(None))
    if execution.status == StepStatus.RETRYING and state.status != b"queued":
        # Its retry time passed a while ago: "scheduled" means RQ's scheduler is late or
        # dead (it dies with a killed worker and is taken over only minutes later).
        return _started_lately(jid, state, memory, seen)
    return _alive(jid, state, memory, seen)


def _reenqueue_lost(report: SweepReport, memory: SweepMemory) -> None:
    waited = clock.ago(get_settings().reenqueue_after)
    candidates = list(
        StepExecution.objects.filter(
            Q(status=StepStatus.ENQUEUED, enqueued_at__lt=waited)
            | Q(status=StepStatus.RETRYING, retry_at__lt=waited)
        )
        .select_related("run")
        .order_by("id")[:BATCH]
    )
    seen = SweepMemory()  # this pass's sightings
    try:
        if candidates:
            states = _job_states(sorted({jid for e in candidates for jid in _job_ids(e)}))
            lost = [e for e in candidates if not _job_alive(states, e, memory, seen)]
            _reenqueue(lost, report)
    finally:
        # Forget jobs no longer seen started, or taken.
        memory.started, memory.taken = seen.started, seen.taken


def _reenqueue(lost: list[StepExecution], report: SweepReport) -> None:
    deliveries: list[Delivery] = []
    for execution in lost:
        # Fenced: only if it is still waiting for this very attempt.
        if StepExecution.objects.filter(
            pk=execution.pk, attempt=execution.attempt, status=execution.status
        ).update(enqueued_at=clock.now()):
            graph = definitions.graph_or_none(execution.run)
            deliveries.append(delivery(execution, graph, at_front=True))
            report.reenqueued.append(execution.pk)
    if deliveries:
        enqueue(deliveries)


def _expire_waits(report: SweepReport) -> None:
    expired = StepExecution.objects.filter(
        status=StepStatus.WAITING, event_deadline__lt=clock.now()
    ).select_related("run")
    _each(
        expired.order_by("id")[:BATCH],
        "expire the wait of",
        lambda execution: _expire_one(execution, report),
    )


def _expire_one(execution: StepExecution, report: SweepReport) -> None:
    with transaction.atomic():
        run = lock_run(execution.run_id)
        error = f"timed out waiting for event {execution.event_name!r}"
        if step_transition(
            execution.pk,
            at_attempt=execution.attempt,
            current=[StepStatus.WAITING],
            to=StepStatus.FAILED,
            error=error,
            finished_at=clock.now(),
        ):
            after_final_failure(
                run,
                definitions.graph_or_none(run),
                execution,
                error,
                execution.attempt,
            )
            report.timed_out_waits.append(execution.pk)


def _stop_cancelled(report: SweepReport) -> None:
    overdue = StepExecution.objects.filter(
        status=StepStatus.RUNNING,
        run__status=RunStatus.CANCELLED,
        run__finished_at__lt=clock.ago(get_settings().cancel_grace),
    ).select_related("run")
    _each(overdue.order_by("id")[:BATCH], "stop", lambda execution: _stop_one(execution, report))


def _stop_one(execution: StepExecution, report: SweepReport) -> None:
    note = "stopped: run cancelled"
    with transaction.atomic():  # the status and the attempt's row, together
        lock_run(execution.run_id)
        moved = step_transition(
            execution.pk,
            at_attempt=execution.attempt,
            current=[StepStatus.RUNNING],
            to=StepStatus.CANCELLED,
            finished_at=clock.now(),
            error=note,
        )
        if not moved:
            return
        record_attempt(execution, execution.attempt, AttemptStatus.FAILED, error=note)
    _stop_job(execution)
    report.stopped.append(execution.pk)


def _stop_job(execution: StepExecution) -> None:
    try:
        conn = get_queue(execution.queue).connection
        # An inline step runs inside a predecessor's job: stop the job actually running it.
        send_stop_job_command(conn, execution.rq_job or job_id(execution.pk, execution.attempt))
    except Exception:
        # Not running in RQ any more, or Redis is away: the late result is fenced anyway.
        logger.info("could not send a stop command for execution %s", execution.pk)


class SweeperThread(threading.Thread):
    """Runs in every worker process; only the lease holder sweeps, so one sweeper acts at
    a time across all machines, and another takes over when its holder dies. Every one
    of them witnesses that the database is reachable (:mod:`.witness`), and the holder
    reclaims silent steps only once it has been for the reclaim time."""

    def __init__(self, holder: str) -> None:
        super().__init__(name="pipelines-sweeper", daemon=True)
        self.holder = holder
        self.lock = lease.SweeperLock(holder, ttl=get_settings().sweep_interval * 3)
        self.stopping = threading.Event()
        self.memory = SweepMemory()

    def _pass(self, interval: float) -> None:
        for retry in (False, True):
            try:
                holds = self.lock.acquire()
                may_reclaim = witness()
                if holds:
                    report = sweep(reclaim=may_reclaim, memory=self.memory)
                    if any(vars(report).values()):
                        logger.info("sweep: %s", report)
                    doctor.log_problems()
                return
            except (OperationalError, InterfaceError) as exc:
                # A dropped database connection: reconnect and go again at once rather than
                # an interval later, since recovery time is what this thread is for.
                connection.close()
                if retry:
                    logger.warning("sweep failed twice on the database: %s", exc)
            except Exception:
                logger.exception("sweep failed; trying again in %ss", interval)
                close_old_connections()
                return

    def run(self) -> None:
        interval = get_settings().sweep_interval
        try:
            next_pass = time.monotonic() + interval
            # Passes start every interval (not an interval after the last one ended), so a
            # slow pass does not push recovery past reclaim time plus one sweep.
            while not self.stopping.wait(max(0.0, next_pass - time.monotonic())):
                next_pass += interval
                self._pass(interval)
        finally:
            try:
                self.lock.release()
            except Exception:
                logger.debug("could not release the sweeper lease", exc_info=True)
            connection.close()
