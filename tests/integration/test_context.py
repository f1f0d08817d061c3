"""Context semantics: write-once, staged step writes, history, read-only input."""

from __future__ import annotations

import pytest

from pipelines import OverwriteError, ReadOnlyError
from pipelines.context import StepContext
from pipelines.engine.runner import run_execution
from pipelines.exceptions import ContextKeyError, ContextValueError
from pipelines.models import ContextWrite, RunContext, RunStatus, StepAttempt, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable, pytest.mark.redis]


@pytest.fixture
def run(redis_conn):
    return p.ChainPipeline.trigger({"n": 1, "tags": ["a"]})


def test_outside_write_commits_at_once_and_is_write_once(run):
    run.context.set("trace_id", "t-1")

    assert RunContext.objects.get(pk=run.pk).data == {"trace_id": "t-1"}
    with pytest.raises(OverwriteError) as error:
        run.context.set("trace_id", "t-2")
    assert "context['trace_id'] is already set (written by outside a step at 20" in str(error.value)
    assert "pass overwrite=True" in str(error.value)
    assert run.context.get("trace_id") == "t-1"

    run.context.set("trace_id", "t-3", overwrite=True)
    assert run.context.get("trace_id") == "t-3"
    history = list(ContextWrite.objects.filter(run=run).values_list("value", "overwrite"))
    assert history == [("t-1", False), ("t-3", True)]


def test_reads_list_keys_items_and_defaults(run):
    run.context.set("b", 2)
    run.context.set("a", {"x": [1]})

    assert run.context.keys() == ["a", "b"]
    assert run.context.items() == [("a", {"x": [1]}), ("b", 2)]
    assert run.context.get("missing") is None
    assert run.context.get("missing", "dflt") == "dflt"
    assert run.context.has("a")
    assert "b" in run.context
    assert not run.context.has("missing")
    with pytest.raises(ContextKeyError):
        run.context["missing"]
    assert 1 not in run.context


@pytest.mark.parametrize("key", [1, None, b"a", ("a",)])
def test_non_string_keys_are_refused_by_get_has_set_and_lookup(run, key):
    for call in (
        lambda: run.context.get(key),
        lambda: run.context.has(key),
        lambda: run.context.set(key, 1),
        lambda: run.context[key],
        lambda: StepContext(run.pk, None).get(key),
    ):
        with pytest.raises(ContextValueError, match="context key must be a str"):
            call()


def test_step_writes_are_staged_until_the_step_commits(run):
    run.context.set("committed", 1)
    context = StepContext(run.pk, run.input)
    context.set("staged", {"v": 1})

    assert context.get("staged") == {"v": 1}  # the step sees its own staged writes
    assert context.get("committed") == 1
    assert not run.context.has("staged")  # nobody else does yet
    with pytest.raises(OverwriteError, match="written by this step, earlier in this attempt"):
        context.set("staged", 2)
    with pytest.raises(OverwriteError, match="written by outside a step"):
        context.set("committed", 2)
    context.set("committed", 3, overwrite=True)
    assert context.get("committed") == 3
    assert run.context.get("committed") == 1


def test_staged_value_is_a_copy_of_what_the_step_passed(run):
    context = StepContext(run.pk, run.input)
    value = {"items": [1]}
    context.set("copy", value)
    value["items"].append(2)

    assert context.get("copy") == {"items": [1]}


def test_input_is_read_only_everywhere(run):
    context = StepContext(run.pk, run.input)

    assert context.input == {"n": 1, "tags": ["a"]}
    with pytest.raises(ReadOnlyError, match=r"context\.input is read-only"):
        context.input["n"] = 2
    with pytest.raises(ReadOnlyError):
        context.input["tags"].append("b")
    with pytest.raises(ReadOnlyError):
        run.context.input.update({"n": 3})


def test_overwrite_error_names_the_step_and_attempt_that_wrote_the_key(run):
    run = drive(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    double = StepExecution.objects.get(run=run, step="Double")

    with pytest.raises(OverwriteError) as error:
        run.context.set("double-3", 0)
    assert f"written by step Double.2 (execution {double.pk}) attempt 1 at 20" in str(error.value)
    write = ContextWrite.objects.get(run=run, key="double-3")
    assert (write.execution_id, write.attempt, write.step, write.value) == (
        double.pk,
        1,
        "Double.2",
        6,
    )


def test_a_key_taken_by_a_concurrent_writer_reruns_the_body_which_meets_overwrite_error(
    redis_conn,
):
    run = drive(p.SneakyPipeline.trigger({"token": "t-1"}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["body_runs"] == 2
    assert run.output["token"] == "t-1"  # the re-run got the payload afresh
    assert "context['contested'] is already set (written by outside a step" in run.output["lost"]
    assert run.context.get("contested") == "rival"
    attempt = StepAttempt.objects.get(execution__run=run)
    assert (attempt.number, attempt.status, attempt.conflict_reruns) == (1, "succeeded", 1)
    assert list(ContextWrite.objects.filter(run=run).values_list("value", flat=True)) == ["rival"]


def test_part_of_the_read_only_input_can_be_stored_and_returned(run):
    context = StepContext(run.pk, run.input)
    tags = context.input["tags"]
    context.set("tags", tags)

    assert context.get("tags") == ["a"]
    assert type(context.get("tags")) is list  # a plain copy, mutable again
    run.context.set("input-copy", run.context.input)
    assert RunContext.objects.get(pk=run.pk).data["input-copy"] == {"n": 1, "tags": ["a"]}


def test_late_result_of_a_superseded_attempt_is_rejected(redis_conn):
    from pipelines.context import StepContext
    from tests.helpers.engine import claim, succeed

    run = p.ChainPipeline.trigger({"n": 1})
    execution = StepExecution.objects.get(run=run)
    claimed = claim(execution.pk, 1, "zombie-worker")
    assert claimed is not None
    # Meanwhile the execution was handed to a new attempt (as recovery does).
    StepExecution.objects.filter(pk=execution.pk).update(attempt=2, status="enqueued")
    context = StepContext(run.pk, run.input)
    context.set("zombie", True)

    outcome = succeed(claimed, 1, p.ChainPipeline.graph, {"n": 2}, context)

    assert outcome == "stale"
    execution.refresh_from_db()
    assert (execution.status, execution.attempt, execution.output) == ("enqueued", 2, None)
    assert not ContextWrite.objects.filter(run=run).exists()
    assert StepExecution.objects.filter(run=run).count() == 1  # no next step
    # And the old attempt's job, delivered again, is not claimed either.

    assert run_execution(execution.pk, 1, worker="zombie-worker") == "skipped"
