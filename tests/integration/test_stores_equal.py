"""Both stores apply the same decisions: run each scenario with the portable ORM store and
with the PostgreSQL store, and compare every row they leave (statuses, attempts, outputs,
context and its history, barriers), with ids and times replaced by their order."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from pipelines.engine.runner import run_chain
from pipelines.models import (
    ContextWrite,
    JoinBarrier,
    PipelineRun,
    RunContext,
    StepAttempt,
    StepExecution,
)
from tests.testapp import fault_pipelines as fp
from tests.testapp import pipelines as p

pytestmark = pytest.mark.django_db(transaction=True)


def drive(run: PipelineRun) -> PipelineRun:
    """Run every runnable execution in this process, oldest first, as one worker serving
    the queue would (successors on the same queue run inline), until nothing is left."""
    for _ in range(200):
        pending = list(
            StepExecution.objects.filter(run=run, status__in=["enqueued", "retrying"])
            .order_by("id")
            .values_list("pk", "attempt", "queue")
        )
        if not pending:
            break
        for pk, attempt, queue in pending:
            run_chain(pk, attempt, worker="w", queue=queue, job_id=f"job-{pk}")
    run.refresh_from_db()
    return run


def snapshot(run: PipelineRun) -> dict[str, Any]:
    """The rows of a run, with ids replaced by their rank and times by their presence."""
    steps = list(StepExecution.objects.filter(run=run).order_by("id"))
    step_rank = {s.pk: i for i, s in enumerate(steps)}
    barriers = list(JoinBarrier.objects.filter(run=run).order_by("id"))
    barrier_rank = {b.pk: i for i, b in enumerate(barriers)}

    def job(rq_job: str) -> str:
        rq_job = re.sub(r"job-(\d+)", lambda m: f"job-#{step_rank[int(m[1])]}", rq_job)
        return re.sub(r"batch-(\d+)-", lambda m: f"batch-#{barrier_rank[int(m[1])]}-", rq_job)

    def text(value: str) -> str:
        value = re.sub(r"execution (\d+)", lambda m: f"execution #{step_rank[int(m[1])]}", value)
        value = re.sub(r" at \d{4}-\d\d-\d\dT[\d:.+]+", " at <time>", value)
        return value.replace(f"run {run.pk}", "run #")

    def value(data: Any) -> Any:
        if isinstance(data, dict) and data.get("run_id") == run.pk:
            return {**data, "run_id": "#"}  # the halt handler's payload names its run
        return data

    return {
        "run": (run.status, run.output, text(run.error), run.finished_at is not None),
        "steps": [
            (
                s.node,
                s.step,
                s.kind,
                s.status,
                s.attempt,
                value(s.payload),
                s.output,
                s.route,
                barrier_rank.get(s.barrier_id),  # type: ignore[arg-type]
                s.branch_index,
                s.reported,
                s.held,
                s.worker,
                job(s.rq_job),
                text(s.error),
                s.crash_count,
                s.event_name,
                step_rank.get(s.compensates_id),  # type: ignore[arg-type]
                s.started_at is not None,
                s.finished_at is not None,
                s.heartbeat_at is not None,
            )
            for s in steps
        ],
        "attempts": [
            (step_rank[a.execution_id], a.number, a.status, a.worker, text(a.error))
            for a in StepAttempt.objects.filter(execution__run=run).order_by(
                "execution_id", "number"
            )
        ],
        "barriers": [
            (b.node, b.expected, b.arrived, b.fired_at is not None, barrier_rank.get(b.parent_id))  # type: ignore[arg-type]
            for b in barriers
        ],
        "context": RunContext.objects.get(run=run).data,
        "history": [
            (w.key, w.value, step_rank.get(w.execution_id), w.step, w.attempt, w.overwrite)  # type: ignore[arg-type]
            for w in ContextWrite.objects.filter(run=run).order_by("id")
        ],
    }


def _saga(run: PipelineRun) -> PipelineRun:
    return drive(drive(run))


def _approval(run: PipelineRun) -> PipelineRun:
    drive(run)
    run.send_event("approved", {"by": "ops"})
    return drive(run)


def _cancelled(run: PipelineRun) -> PipelineRun:
    first = StepExecution.objects.get(run=run)
    run_chain(first.pk, 1, worker="w")  # Book only: no queue, nothing runs inline
    run.cancel("operator said so")
    return drive(run)


def _resumed(run: PipelineRun) -> PipelineRun:
    drive(run)
    run.resume()
    return drive(run)


SCENARIOS: dict[str, tuple[Any, Any, Callable[[PipelineRun], PipelineRun]]] = {
    "chain": (p.ChainPipeline, {"n": 1}, drive),
    "divide with sub-flows": (p.DividePipeline, {"n": 0}, drive),
    "expand and collapse": (p.ExpandPipeline, {"count": 5}, drive),
    "big expand in batches": (p.ExpandPipeline, {"count": 300}, drive),
    "empty expand": (p.ExpandPipeline, {"count": 0}, drive),
    "divert and converge": (p.DivertPipeline, {"choice": "b"}, drive),
    "divert otherwise": (p.DivertPipeline, {"route": "nope"}, drive),
    "divert to the end": (p.DivertEndPipeline, {"choice": "a"}, drive),
    "nested": (p.NestedPipeline, {"n": 1}, drive),
    "retries then halt": (p.FailingPipeline, {"n": 1}, drive),
    "flaky writer": (p.FlakyPipeline, None, drive),
    "expand over the limit": (p.TooManyPipeline, None, drive),
    "compensations": (p.SagaPipeline, None, _saga),
    "wait for an event": (fp.ApprovalPipeline, {}, _approval),
    "cancel": (fp.CancelPipeline, {}, _cancelled),
    "resume": (p.FailingPipeline, {"n": 1}, _resumed),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@override_settings(PIPELINES_MAX_EXPAND=500, PIPELINES_RETRY_BACKOFF=0)
def test_both_stores_leave_the_same_rows(scenario, redis_conn):
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    pipeline, payload, play = SCENARIOS[scenario]
    seen = {}
    for store in ("orm", "postgresql"):
        redis_conn.flushdb()
        with override_settings(PIPELINES_STORE=store):
            run = play(pipeline.trigger(payload))
        seen[store] = snapshot(run)
    for table in seen["orm"]:
        orm, pg = seen["orm"][table], seen["postgresql"][table]
        if isinstance(orm, list):
            for i, (a, b) in enumerate(zip(orm, pg, strict=False)):
                assert a == b, f"{table}[{i}] differs"
        assert orm == pg, f"{table} differs"
    assert seen["orm"]["run"][0] in ("succeeded", "failed", "cancelled", "waiting")
