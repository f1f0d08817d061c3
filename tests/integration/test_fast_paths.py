"""The engine's fast paths keep its guarantees: one-statement commits and claims on
PostgreSQL, successors claimed by the commit that creates them, and expand items
sharing batch jobs."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pipelines import definitions
from pipelines.conf import DEFAULTS, get_settings
from pipelines.context import StepContext
from pipelines.engine import continuation, plan, runner, sweeper, tasks
from pipelines.engine.delivery import batch_job_id, get_queue
from pipelines.engine.outcome import Outcome
from pipelines.engine.store import get_store
from pipelines.exceptions import InvalidJobError
from pipelines.models import (
    JoinBarrier,
    PipelineRun,
    RunStatus,
    StepAttempt,
    StepExecution,
    StepStatus,
)
from tests.helpers.engine import claim, succeed
from tests.helpers.inprocess import drive, run_queued_jobs
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def test_a_chain_costs_one_statement_per_step_on_postgresql(redis_conn):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    redis_conn.flushdb()

    with CaptureQueriesContext(connection) as queries:
        runner.run_chain(first.pk, 1, worker="w", queue="pipelines")

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"n": 6, "seen": ["Add", "AddAgain", "Double"]}
    assert run.started_at is not None
    assert run.started_at <= run.finished_at
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == [
        "WITH",  # the claim, which also starts the pending run
        "WITH",  # Add commits and claims AddAgain
        "WITH",  # AddAgain commits and claims Double
        "SELECT",  # Double's context.set() checks the committed context
        "BEGIN",  # Double's commit: the step, and its staged write in the same transaction
        "WITH",
        "WITH",
        "COMMIT",
    ]
    assert get_queue("pipelines").job_ids == []  # every successor ran inline
    attempts = StepAttempt.objects.filter(execution__run=run)
    assert sorted(attempts.values_list("status", flat=True)) == ["succeeded"] * 3


@pytest.mark.portable
def test_the_commit_claims_the_successor_for_this_worker(redis_conn, monkeypatch):
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    redis_conn.flushdb()
    seen = []
    real_keep = continuation.Budget.keep

    def keep_once(budget):
        if budget.steps_left < 20:  # the second step is about to start
            seen.append(StepExecution.objects.get(run=run, node="AddAgain.1"))
            raise KeyboardInterrupt  # e.g. a shutdown signal between two inline steps
        return real_keep(budget)

    monkeypatch.setattr(continuation.Budget, "keep", keep_once)
    with pytest.raises(KeyboardInterrupt):
        runner.run_chain(first.pk, 1, worker="w-1", queue="pipelines", job_id="job-1")

    claimed = seen[0]
    assert (claimed.status, claimed.worker, claimed.rq_job) == ("running", "w-1", "job-1")
    assert claimed.heartbeat_at is not None
    # Not run here after all: handed back to the queue, unclaimed, same attempt.
    claimed.refresh_from_db()
    assert (claimed.status, claimed.attempt, claimed.worker) == ("enqueued", 1, "")
    assert get_queue("pipelines").job_ids == [f"pipelines-{claimed.pk}-1"]
    monkeypatch.undo()
    run_queued_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error


@pytest.mark.portable
def test_a_late_success_in_a_failed_run_takes_the_general_path(redis_conn):
    """The one-statement commit writes nothing once the run has ended; the general path
    then records the step without starting its successor."""
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    execution = claim(first.pk, 1, "w")
    assert execution is not None
    run.cancel("operator said so")

    graph = p.ChainPipeline.graph

    result = succeed(execution, 1, graph, {"n": 2}, StepContext(run.pk, None))

    assert result == "succeeded"
    assert StepExecution.objects.filter(run=run).count() == 1  # no successor
    first.refresh_from_db()
    assert first.status == StepStatus.SUCCEEDED


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4)
def test_a_big_expand_shares_batch_jobs_and_collapses_in_order(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})  # 300 // 64 = 4 items per job
    assert run_queued_jobs(1) == ["pipelines.engine.tasks.execute_step"]  # Items: the expand

    items = StepExecution.objects.filter(run=run, step="Square")
    assert items.count() == 300
    batch_ids = set(items.values_list("rq_job", flat=True))
    assert len(batch_ids) == 75
    assert all(b.startswith(batch_job_id(0, 0).split("0-0")[0]) for b in batch_ids)
    assert set(get_queue("pipelines").job_ids) == batch_ids

    functions = run_queued_jobs()

    assert functions.count("pipelines.engine.tasks.execute_steps") == 75
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * i for i in range(300)]  # in element order


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4, PIPELINES_EAGER_SECONDS=0)
def test_a_batch_out_of_budget_hands_its_other_items_back(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    run_queued_jobs(1)  # Items
    first_batch = sorted(
        StepExecution.objects.filter(run=run, step="Square").values_list("pk", flat=True)
    )[:4]
    redis_conn.flushdb()

    assert tasks.execute_steps([[pk, 1] for pk in first_batch]) == "ran 1 of 4"

    statuses = dict(StepExecution.objects.filter(pk__in=first_batch).values_list("pk", "status"))
    assert statuses[first_batch[0]] == "succeeded"
    assert get_queue("pipelines").job_ids == [f"pipelines-{pk}-1" for pk in first_batch[1:]]


@pytest.mark.portable
def test_batch_jobs_with_bad_arguments_are_refused(redis_conn):
    for bad in ([1, 2], [["1", 2]], [[1, 2, 3]], "[[1, 1]]", [[True, 1]]):
        with pytest.raises(InvalidJobError, match="list of \\[execution_id, attempt\\] pairs"):
            tasks.execute_steps(bad)


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4, PIPELINES_REENQUEUE_AFTER=0)
def test_the_sweeper_leaves_queued_batches_alone_and_recovers_lost_ones(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    run_queued_jobs(1)  # Items
    queued = set(get_queue("pipelines").job_ids)
    assert len(queued) == 75

    report = sweeper.sweep()
    assert report.reenqueued == []  # every item's batch job is queued
    assert set(get_queue("pipelines").job_ids) == queued

    redis_conn.flushdb()  # the batches are lost
    report = sweeper.sweep()
    assert len(report.reenqueued) == 300
    assert len(get_queue("pipelines").job_ids) == 300  # one job per item now
    run_queued_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * i for i in range(300)]


@pytest.mark.portable
@override_settings(PIPELINES_REENQUEUE_AFTER=0)
def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_enqueued_again(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    queue = get_queue("pipelines")
    job = f"pipelines-{first.pk}-1"
    assert queue.job_ids == [job]
    # A worker takes the job off the queue as RQ does (into the queue's intermediate
    # list), then dies before it starts it: RQ still says "queued".
    redis_conn.lmove(queue.key, queue.intermediate_queue_key)
    assert queue.job_ids == []
    assert queue.fetch_job(job).get_status() == "queued"
    memory = sweeper.SweepMemory()

    # Seen once, it may be a live worker about to start it; seen on the next pass too, it
    # is not.
    assert sweeper.sweep(memory=memory).reenqueued == []
    assert sweeper.sweep(memory=memory).reenqueued == [first.pk]

    assert queue.job_ids == [job]
    run_queued_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error


@pytest.mark.portable
@override_settings(PIPELINES_RECLAIM_AFTER=1)
def test_a_heartbeat_that_resumes_before_the_reclaim_commits_wins(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    first = StepExecution.objects.get(run=run)
    assert claim(first.pk, 1, "slow-worker") is not None
    stale = timezone.now() - timedelta(minutes=1)
    StepExecution.objects.filter(pk=first.pk).update(heartbeat_at=stale)
    read_by_sweeper = StepExecution.objects.select_related("run").get(pk=first.pk)
    # The worker's heartbeat lands after the sweeper read the row.
    StepExecution.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now())

    report = sweeper.SweepReport()
    sweeper._reclaim_one(read_by_sweeper, report)

    assert report.reclaimed == []
    first.refresh_from_db()
    assert (first.status, first.attempt) == ("running", 1)


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4, PIPELINES_REENQUEUE_AFTER=0)
def test_a_running_batch_is_alive_until_seen_running_for_the_reclaim_time(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    run_queued_jobs(1)  # Items
    batch = get_queue("pipelines").job_ids[0]
    items = StepExecution.objects.filter(run=run, rq_job=batch)
    assert items.count() == 4
    queue_key = get_queue("pipelines").key

    # Taken by a registered worker: out of the queue, "started".
    redis_conn.lrem(queue_key, 0, batch)
    redis_conn.hset(f"rq:job:{batch}", mapping={"status": "started", "worker_name": "busy"})
    redis_conn.hset("rq:worker:busy", "state", "busy")
    memory = sweeper.SweepMemory()
    assert sweeper.sweep(memory=memory).reenqueued == []
    assert sweeper.sweep(memory=memory).reenqueued == []

    # This sweeper has seen it running for longer than a step is given to heartbeat: it
    # is stuck on a slow item, and the items it has not reached get jobs of their own.
    memory.started[batch] -= get_settings().reclaim_after
    assert sorted(sweeper.sweep(memory=memory).reenqueued) == sorted(
        items.values_list("pk", flat=True)
    )


@pytest.mark.portable
def test_batches_follow_the_continuation_switch():
    def batch_size(n: int) -> int:
        conf = get_settings()
        return plan.BatchPolicy(conf.expand_batch, conf.eager_steps).size(n)

    assert [batch_size(n) for n in (5, 127, 128, 640, 10_000)] == [1, 1, 2, 10, 10]
    with override_settings(PIPELINES_EAGER_STEPS=1):
        assert batch_size(10_000) == 1
    with override_settings(PIPELINES_EXPAND_BATCH=1):
        assert batch_size(10_000) == 1


@pytest.mark.portable
def test_a_branch_that_finished_after_its_run_failed_is_continued_by_resume(redis_conn):
    """Another branch failed the run while this one was running: its success starts
    nothing then, but resuming the run must carry it on to the join, or the resumed run
    would never finish."""
    from django.db import transaction

    from pipelines.engine.halting import halt_run
    from pipelines.engine.rows import lock_run

    graph = p.DividePipeline.graph
    run = p.DividePipeline.trigger({"n": 0})
    runner.run_execution(StepExecution.objects.get(run=run).pk, 1)  # Add: divides
    fast = StepExecution.objects.get(run=run, step="FastLabel")
    claimed = claim(fast.pk, 1, "w")
    assert claimed is not None
    runner.run_execution(StepExecution.objects.get(run=run, step="SlowLabel").pk, 1)
    with transaction.atomic():  # the sub-flow branch fails the run meanwhile
        halt_run(lock_run(run.pk), graph, "Prefix broke", failed_node="Prefix.3")
    StepExecution.objects.filter(run=run, step="Prefix").update(status="failed")

    assert succeed(claimed, 1, graph, "fast", StepContext(run.pk, None)) == "succeeded"
    fast.refresh_from_db()
    assert (fast.status, fast.held, fast.reported) == ("succeeded", True, False)

    run.resume()
    fast.refresh_from_db()
    assert (fast.held, fast.reported) == (False, True)  # counted in at the join now
    run = drive(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == ["slow", "fast", "sub-flow"]


@pytest.mark.portable
def test_a_run_with_nothing_to_retry_is_not_resumed(redis_conn):
    """An expand over the limit fails the run after its step succeeded: resuming would
    leave a running run with nothing to run, so it is refused with the reason."""
    from pipelines.exceptions import InvalidTransitionError

    run = drive(p.TooManyPipeline.trigger(None))
    assert run.status == RunStatus.FAILED

    with pytest.raises(InvalidTransitionError, match="has no failed step to retry"):
        run.resume()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def _claimed_items(run):
    items = list(StepExecution.objects.filter(run=run, step="Square").order_by("branch_index"))
    return [claim(item.pk, 1, "w") for item in items]


def test_an_arrival_that_leaves_its_barrier_short_is_one_autocommitted_statement(redis_conn):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ExpandPipeline.trigger({"count": 3})
    run_queued_jobs(1)  # Items
    graph = definitions.graph_for(run)
    first, second, last = _claimed_items(run)
    barrier = JoinBarrier.objects.get(run=run)

    kinds = []
    for item in (first, second, last):
        with CaptureQueriesContext(connection) as queries:
            assert succeed(item, 1, graph, item.branch_index, StepContext(run.pk, None)) == (
                "succeeded"
            )
        kinds.append([q["sql"].split()[0].upper() for q in queries.captured_queries])

    assert kinds[0] == kinds[1] == ["WITH"]  # no transaction of its own
    # This process counted the barrier one short, so the last arrival goes straight to
    # a transaction, which fires the join.
    assert kinds[2][:2] == ["BEGIN", "WITH"]
    assert kinds[2][-1] == "COMMIT"
    barrier.refresh_from_db()
    assert (barrier.arrived, barrier.expected, barrier.fired_at is not None) == (3, 3, True)
    gather = StepExecution.objects.get(run=run, step="Gather")
    assert (gather.status, gather.payload) == ("enqueued", [0, 1, 2])
    assert f"pipelines-{gather.pk}-1" in get_queue("pipelines").job_ids


def test_an_arrival_completing_a_barrier_counted_elsewhere_is_sent_again(redis_conn):
    """Another process counted the other arrivals: the statement, autocommitted, finds
    that this arrival would complete the barrier, writes nothing, and is sent again in the
    transaction that fires the join."""
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ExpandPipeline.trigger({"count": 2})
    run_queued_jobs(1)  # Items
    graph = definitions.graph_for(run)
    first, last = _claimed_items(run)
    assert succeed(first, 1, graph, 0, StepContext(run.pk, None)) == "succeeded"
    get_store()._one_short = None  # as in another process

    with CaptureQueriesContext(connection) as queries:
        assert succeed(last, 1, graph, 1, StepContext(run.pk, None)) == "succeeded"

    kinds = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert kinds[:3] == ["WITH", "BEGIN", "WITH"]
    assert kinds[-1] == "COMMIT"
    barrier = JoinBarrier.objects.get(run=run)
    assert (barrier.arrived, barrier.fired_at is not None) == (2, True)
    gather = StepExecution.objects.get(run=run, step="Gather")
    assert (gather.status, gather.payload) == ("enqueued", [0, 1])


def test_an_arrival_counts_nothing_for_a_step_reclaimed_while_it_waited(redis_conn):
    """The arrival's statement takes its snapshot, then waits for the run's lock; the
    sweeper, holding that lock, reclaims the step. The statement must then see the step's
    newest row and count nothing."""
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ExpandPipeline.trigger({"count": 3})
    run_queued_jobs(1)  # Items
    graph = definitions.graph_for(run)
    item = _claimed_items(run)[0]
    locked, reclaimed = threading.Event(), threading.Event()
    results: list[str] = []

    def sweeper_like() -> None:
        with transaction.atomic():
            PipelineRun.objects.select_for_update(no_key=True).get(pk=run.pk)
            locked.set()
            _wait_for_a_lock_waiter()
            StepExecution.objects.filter(pk=item.pk).update(status="enqueued", attempt=2)
        reclaimed.set()
        connection.close()

    def late_arrival() -> None:
        locked.wait(10)
        results.append(succeed(item, 1, graph, 0, StepContext(run.pk, None)))
        connection.close()

    threads = [threading.Thread(target=sweeper_like), threading.Thread(target=late_arrival)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert reclaimed.is_set()
    assert results == ["stale"]
    assert JoinBarrier.objects.get(run=run).arrived == 0
    item.refresh_from_db()
    assert (item.status, item.attempt, item.reported) == ("enqueued", 2, False)


def _wait_for_a_lock_waiter() -> None:
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # pg_locks, not pg_stat_activity: that one is a snapshot for the whole
            # transaction.
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the arrival never waited for the run's lock")


def _expand_committed_by(run, job: str):
    """Commit the expand step of ``run`` as a worker running job ``job`` would."""
    items_step = StepExecution.objects.get(run=run, step="Items")
    execution = claim(items_step.pk, 1, "w", job)
    assert execution is not None
    graph = definitions.graph_for(run)
    output = list(range(run.input["count"]))
    decision = plan.for_execution(graph, execution, output)
    budget = continuation.Budget("pipelines", "w", job, None)
    return get_store().commit_success(
        execution, 1, Outcome(output, StepContext(run.pk, None)), decision, graph, keep=budget
    )


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4)
def test_the_expanding_job_keeps_the_first_batch_and_runs_it_next(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    items_step = StepExecution.objects.get(run=run, step="Items")
    redis_conn.flushdb()

    runner.run_chain(items_step.pk, 1, worker="w", queue="pipelines", job_id="job-x")

    items = StepExecution.objects.filter(run=run, step="Square").order_by("branch_index")
    ran = items.filter(status=StepStatus.SUCCEEDED)
    assert [i.branch_index for i in ran] == [0, 1, 2, 3]  # the first batch, in this job
    assert set(ran.values_list("rq_job", "worker")) == {("job-x", "w")}
    queued = get_queue("pipelines").job_ids
    assert len(queued) == 74  # the other 296 items: 74 batch jobs, none for the first
    assert all(job.startswith("pipelines-batch-") for job in queued)
    run_queued_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * i for i in range(300)]


@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4)
def test_each_items_arrival_claims_the_next_item_on_postgresql(redis_conn):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ExpandPipeline.trigger({"count": 300})
    items_step = StepExecution.objects.get(run=run, step="Items")
    redis_conn.flushdb()

    with CaptureQueriesContext(connection) as queries:
        runner.run_chain(items_step.pk, 1, worker="w", queue="pipelines", job_id="job-x")

    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    # Items' claim; its commit, which expands (the barrier and 300 items); the first
    # item's claim; then one statement per item: its arrival, which claims the next item
    # for this job (the last one claims nothing). No transaction of their own.
    assert statements == ["WITH"] * (3 + 4)
    claims = [q["sql"] for q in queries.captured_queries if "claim_attempt" in q["sql"]]
    assert claims == []  # the names are gone: every parameter was bound
    ran = StepExecution.objects.filter(run=run, step="Square", branch_index__lt=4)
    assert set(ran.values_list("status", "worker", "rq_job")) == {("succeeded", "w", "job-x")}
    assert set(StepAttempt.objects.filter(execution__in=ran).values_list("number", "status")) == {
        (1, "succeeded")
    }
    assert StepAttempt.objects.filter(execution__in=ran).count() == 4
    assert JoinBarrier.objects.get(run=run).arrived == 4


@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4)
def test_a_claimed_next_item_the_job_does_not_reach_is_handed_back(redis_conn, monkeypatch):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    run = p.ExpandPipeline.trigger({"count": 300})
    items_step = StepExecution.objects.get(run=run, step="Items")
    redis_conn.flushdb()
    real_next_item = continuation.NextItem
    calls, seen = [], []

    def stopped_before_the_third_item(*args):
        calls.append(args)
        if len(calls) == 3:  # two items ran; the second's arrival claimed the third
            third = StepExecution.objects.get(run=run, step="Square", branch_index=2)
            seen.append((third.status, third.worker, third.rq_job))
            raise KeyboardInterrupt  # e.g. a shutdown signal between two items
        return real_next_item(*args)

    monkeypatch.setattr(runner, "NextItem", stopped_before_the_third_item)
    with pytest.raises(KeyboardInterrupt):
        runner.run_chain(items_step.pk, 1, worker="w", queue="pipelines", job_id="job-x")

    by_index = {
        e.branch_index: e
        for e in StepExecution.objects.filter(run=run, step="Square", branch_index__lt=4)
    }
    assert [by_index[i].status for i in (0, 1)] == ["succeeded", "succeeded"]
    assert seen == [("running", "w", "job-x")]
    # The third was claimed by the second's arrival, the fourth not yet: both are back
    # on the queue, unclaimed, a job each.
    for i in (2, 3):
        assert (by_index[i].status, by_index[i].attempt, by_index[i].worker) == ("enqueued", 1, "")
    queued = get_queue("pipelines").job_ids
    assert {f"pipelines-{by_index[i].pk}-1" for i in (2, 3)} <= set(queued)
    assert len(queued) == 74 + 2
    monkeypatch.undo()
    run_queued_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [i * i for i in range(300)]


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4, PIPELINES_EAGER_STEPS=3)
def test_kept_items_the_budget_does_not_reach_get_jobs_of_their_own(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    items_step = StepExecution.objects.get(run=run, step="Items")
    redis_conn.flushdb()

    # Three steps: the expand and two items. It keeps those two; the other two of the
    # first batch keep their batch job.
    runner.run_chain(items_step.pk, 1, worker="w", queue="pipelines", job_id="job-x")

    first_batch = StepExecution.objects.filter(run=run, step="Square", branch_index__lt=4)
    by_index = {e.branch_index: e for e in first_batch}
    assert {by_index[i].status for i in (0, 1)} == {StepStatus.SUCCEEDED}
    assert {by_index[i].rq_job for i in (0, 1)} == {"job-x"}
    assert {by_index[i].status for i in (2, 3)} == {StepStatus.ENQUEUED}
    queued = get_queue("pipelines").job_ids
    assert len(queued) == 75
    assert by_index[2].rq_job in queued


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4)
def test_kept_items_the_time_budget_does_not_reach_get_jobs_of_their_own(redis_conn, monkeypatch):
    run = p.ExpandPipeline.trigger({"count": 300})
    items_step = StepExecution.objects.get(run=run, step="Items")
    redis_conn.flushdb()
    # The job's time is up once the first item has run.
    monkeypatch.setattr(continuation.Budget, "fits_another", lambda self, timeout: False)

    runner.run_chain(items_step.pk, 1, worker="w", queue="pipelines", job_id="job-x")

    first_batch = StepExecution.objects.filter(run=run, step="Square", branch_index__lt=4)
    by_index = {e.branch_index: e for e in first_batch}
    assert by_index[0].status == StepStatus.SUCCEEDED
    left = [by_index[i] for i in (1, 2, 3)]
    assert {e.status for e in left} == {StepStatus.ENQUEUED}
    queued = set(get_queue("pipelines").job_ids)
    assert {f"pipelines-{e.pk}-1" for e in left} <= queued  # a job each
    assert len(queued) == 74 + 3


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=1000, PIPELINES_EXPAND_BATCH=4, PIPELINES_REENQUEUE_AFTER=0)
def test_kept_items_wait_for_their_running_job_and_are_recovered_when_it_is_gone(redis_conn):
    run = p.ExpandPipeline.trigger({"count": 300})
    redis_conn.flushdb()
    committed = _expand_committed_by(run, "pipelines-job-x")
    kept = [pk for pk, _ in committed.kept.items]
    assert len(kept) == 4
    assert set(StepExecution.objects.filter(pk__in=kept).values_list("status", "rq_job")) == {
        ("enqueued", "pipelines-job-x")
    }

    # The job that keeps them runs, on a registered worker: they are not lost.
    redis_conn.hset("rq:job:pipelines-job-x", mapping={"status": "started", "worker_name": "w"})
    redis_conn.hset("rq:worker:w", "state", "busy")
    assert sweeper.sweep().reenqueued == []

    # The worker died with the job: its kept items get jobs of their own.
    redis_conn.delete("rq:worker:w")
    assert sorted(sweeper.sweep().reenqueued) == sorted(kept)


@pytest.mark.portable
@override_settings(PIPELINES_MAX_EXPAND=DEFAULTS["PIPELINES_MAX_EXPAND"])
def test_an_expand_of_the_largest_default_size_is_created_whole(redis_conn):
    """10,000 items of 27 columns are more bound parameters than one statement may carry
    (65,535 on PostgreSQL with server-side binding): the insert is split."""
    size = get_settings().max_expand
    assert size == 10_000  # the default
    run = p.ExpandPipeline.trigger({"count": size})
    items_step = StepExecution.objects.get(run=run, step="Items")

    assert runner.run_execution(items_step.pk, 1, worker="w") == "succeeded"

    items = StepExecution.objects.filter(run=run, step="Square")
    assert items.count() == size
    assert sorted(items.values_list("branch_index", flat=True)) == list(range(size))
    assert JoinBarrier.objects.get(run=run).expected == size
