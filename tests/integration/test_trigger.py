"""Triggering: one transaction, enqueue on commit, nothing on rollback; JSON jobs."""

from __future__ import annotations

import json
import zlib

import pytest
from django.db import transaction

from pipelines import IdempotencyKeyReusedError, InputValueError, UnknownPipelineError
from pipelines.engine.delivery import ENGINE_FUNCTION, get_queue
from pipelines.models import PipelineRun, RunContext, RunStatus, StepExecution
from tests.testapp.pipelines import ChainPipeline, OtherQueuePipeline

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


def test_commit_enqueues_the_first_step_exactly_once(redis_conn):
    queue = get_queue("pipelines")
    with transaction.atomic():
        run = ChainPipeline.trigger({"n": 1})
        assert queue.count == 0  # nothing leaves before the caller commits

    first = StepExecution.objects.get(run=run)
    assert queue.job_ids == [f"pipelines-{first.pk}-1"]
    job = queue.fetch_job(queue.job_ids[0])
    assert job.func_name == ENGINE_FUNCTION
    assert job.args == [first.pk, 1]
    assert (first.status, first.attempt, first.payload) == ("enqueued", 1, {"n": 1})
    assert run.status == RunStatus.PENDING
    assert RunContext.objects.get(pk=run.pk).data == {}


def test_rollback_leaves_no_run_and_no_job(redis_conn):
    queue = get_queue("pipelines")
    with pytest.raises(RuntimeError), transaction.atomic():
        ChainPipeline.trigger({"n": 1})
        raise RuntimeError("the caller's request failed")

    assert PipelineRun.objects.count() == 0
    assert StepExecution.objects.count() == 0
    assert queue.count == 0
    assert redis_conn.keys("rq:job:*") == []


def test_jobs_in_redis_are_json_and_carry_only_ids(redis_conn):
    run = ChainPipeline.trigger({"secret": "not in redis", "n": 1})
    first = StepExecution.objects.get(run=run)
    raw = redis_conn.hget(f"rq:job:pipelines-{first.pk}-1", "data")

    func, instance, args, kwargs = json.loads(zlib.decompress(raw))
    assert (func, instance, args, kwargs) == (ENGINE_FUNCTION, None, [first.pk, 1], {})
    assert b"not in redis" not in zlib.decompress(raw)


def test_step_queue_is_the_one_its_class_names(redis_conn):
    run = OtherQueuePipeline.trigger(None)
    first = StepExecution.objects.get(run=run)

    assert get_queue("other").job_ids == [f"pipelines-{first.pk}-1"]
    assert get_queue("pipelines").count == 0


def test_same_idempotency_key_returns_the_same_run_and_enqueues_once(redis_conn):
    first = ChainPipeline.trigger({"n": 1}, idempotency_key="order-42")
    again = ChainPipeline.trigger({"n": 1}, idempotency_key="order-42")
    with transaction.atomic():
        inside = ChainPipeline.trigger({"n": 1}, idempotency_key="order-42")

    assert again.pk == first.pk == inside.pk
    assert PipelineRun.objects.count() == 1
    assert get_queue("pipelines").count == 1
    other = ChainPipeline.trigger({"n": 1}, idempotency_key="order-43")
    assert other.pk != first.pk


def test_a_reused_idempotency_key_with_another_input_is_refused(redis_conn):
    first = ChainPipeline.trigger({"n": 1}, idempotency_key="order-42")

    with pytest.raises(IdempotencyKeyReusedError) as error:
        ChainPipeline.trigger({"n": 999}, idempotency_key="order-42")
    # The caller's transaction goes on after the refusal.
    with transaction.atomic():
        with pytest.raises(IdempotencyKeyReusedError):
            ChainPipeline.trigger({"n": 5}, idempotency_key="order-42")
        again = ChainPipeline.trigger({"n": 1}, idempotency_key="order-42")

    assert str(error.value) == (
        f"idempotency key 'order-42' already names run {first.pk} of ChainPipeline, which "
        f"was triggered with a different input; use a new key for a new input"
    )
    assert error.value.run_id == first.pk
    assert again.pk == first.pk
    assert PipelineRun.objects.count() == 1
    assert get_queue("pipelines").count == 1


def test_bad_input_is_refused_before_anything_is_written(redis_conn):
    with pytest.raises(InputValueError, match=r'^input\["when"\]: date is not a JSON type'):
        import datetime

        ChainPipeline.trigger({"when": datetime.date(2026, 1, 1)})
    with pytest.raises(InputValueError, match="idempotency_key must be 1 to 255 characters, got 0"):
        ChainPipeline.trigger({"n": 1}, idempotency_key="")

    assert PipelineRun.objects.count() == 0
    assert get_queue("pipelines").count == 0


def test_unknown_pipeline_names_the_known_ones():
    from pipelines.services import run_trigger

    with pytest.raises(
        UnknownPipelineError, match=r"unknown pipeline 'Nope' \(known: .*ChainPipeline"
    ):
        run_trigger(pipeline="Nope", input=None)
