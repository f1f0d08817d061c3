"""Every transition end to end on real rqworker processes, PostgreSQL and Redis."""

from __future__ import annotations

import pytest

from pipelines.models import ContextWrite, RunStatus, StepAttempt, StepExecution, StepStatus
from tests.conftest import wait_for
from tests.testapp import pipelines as p

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.portable,
    pytest.mark.redis,
    pytest.mark.workers,
]


def steps_of(run):
    return list(StepExecution.objects.filter(run=run).order_by("id"))


def test_chain_passes_each_return_value_to_the_next_step(workers, finished):
    run = finished(p.ChainPipeline.trigger({"n": 1}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"n": 6, "seen": ["Add", "AddAgain", "Double"]}
    assert [s.node for s in steps_of(run)] == ["Add.0", "AddAgain.1", "Double.2"]
    assert run.context.get("double-3") == 6
    assert run.started_at <= run.finished_at


def test_combine_gets_branch_outputs_in_declared_order_including_sub_flows(workers, finished):
    run = finished(p.DividePipeline.trigger({"n": 0}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    # SlowLabel finishes last but is declared first; the sub-flow branch reports its
    # last step's output.
    assert run.output == ["slow", "fast", "sub-flow"]
    nodes = [s.node for s in steps_of(run)]
    assert nodes.count("Gather.5") == 1
    branch_payloads = {s.node: s.payload for s in steps_of(run) if s.barrier_id}
    assert branch_payloads["SlowLabel.1"] == {"n": 1, "seen": ["Add"]}
    assert branch_payloads["Prefix.3"] == {"n": 1, "seen": ["Add"]}
    assert branch_payloads["Suffix.4"] == "sub"


def test_collapse_gets_outputs_in_element_order(workers, finished):
    run = finished(p.ExpandPipeline.trigger({"count": 5}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == [0, 1, 4, 9, 16]
    squares = [s for s in steps_of(run) if s.step == "Square"]
    assert sorted(s.payload for s in squares) == [0, 1, 2, 3, 4]
    assert {s.barrier_id for s in squares} == {squares[0].barrier_id}


def test_expand_of_an_empty_list_reaches_collapse_as_empty_list(workers, finished):
    run = finished(p.ExpandPipeline.trigger({"count": 0}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == []
    assert [s.step for s in steps_of(run)] == ["Items", "Gather"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"choice": "a"}, {"converged": {"branch": "a", "got": "a"}}),
        ({"choice": "b"}, {"converged": {"branch": "b2", "from": "b1"}}),
        ({"choice": "zzz"}, {"converged": {"branch": "otherwise", "got": "zzz"}}),
        ({"route": "a"}, {"converged": {"branch": "a", "got": {"via": "route"}}}),
    ],
)
def test_divert_runs_exactly_one_route_then_converges(workers, finished, payload, expected):
    run = finished(p.DivertPipeline.trigger(payload))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == expected
    ran = {s.step for s in steps_of(run)}
    other_routes = {"RouteA", "RouteB1", "Otherwise"} - {
        {"a": "RouteA", "b": "RouteB1"}.get(payload.get("choice") or payload["route"], "Otherwise")
    }
    assert not ran & other_routes
    decide = steps_of(run)[0]
    assert decide.route == {"a": "a", "b": "b"}.get(
        payload.get("choice") or payload["route"], "otherwise"
    )


def test_divert_without_converge_ends_the_run_with_the_route_output(workers, finished):
    run = finished(p.DivertEndPipeline.trigger({"choice": "nope"}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"branch": "otherwise", "got": "nope"}


def test_divide_branch_may_hold_an_expand_collapse_sub_flow(workers, finished):
    run = finished(p.NestedPipeline.trigger({"count": 3}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == ["fast", [0, 1, 4]]


def test_retries_exhausted_fail_the_run_and_run_the_halt_handler_once(workers, finished):
    run = finished(p.FailingPipeline.trigger({"n": 1}))

    assert run.status == RunStatus.FAILED
    assert "Explode.1 failed after 2 attempts" in run.error
    assert "RuntimeError: boom on attempt 2" in run.error
    explode = StepExecution.objects.get(run=run, step="Explode")
    attempts = list(StepAttempt.objects.filter(execution=explode).order_by("number"))
    assert [(a.number, a.status) for a in attempts] == [(1, "failed"), (2, "failed")]
    assert "Traceback" in attempts[0].traceback
    assert "RuntimeError: boom on attempt 1" in attempts[0].error
    # Failed attempts leave no context writes; the chain stops at the failed step.
    assert not run.context.has("explode-attempt-1")
    assert not StepExecution.objects.filter(run=run, step="AddAgain").exists()

    handler = StepExecution.objects.get(run=run, kind="halt")
    wait_for(lambda: StepExecution.objects.get(pk=handler.pk).status == StepStatus.SUCCEEDED)
    assert run.context.get("halted_because") == run.error
    assert StepExecution.objects.filter(run=run, kind="halt").count() == 1
    import django_rq

    counter = django_rq.get_connection("pipelines").get(f"test:count:halt-{run.pk}")
    assert counter == b"1"


def test_failed_attempt_leaves_no_staged_writes_and_retry_sets_same_keys(workers, finished):
    run = finished(p.FlakyPipeline.trigger(None))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"attempt": 2}
    assert run.context.to_dict() == {"written_by_attempt": 2, "shared": {"attempt": 2}}
    writes = list(ContextWrite.objects.filter(run=run).values_list("key", "attempt", "overwrite"))
    assert sorted(writes) == [("shared", 2, False), ("written_by_attempt", 2, False)]
    execution = StepExecution.objects.get(run=run)
    assert execution.attempt == 2
    assert [a.status for a in execution.attempts.order_by("number")] == ["failed", "succeeded"]


def test_expand_over_the_limit_halts_the_run_with_a_clear_reason(workers, finished):
    run = finished(p.TooManyPipeline.trigger(None))

    assert run.status == RunStatus.FAILED
    assert "51 elements to expand, over the limit of 50 (PIPELINES_MAX_EXPAND)" in run.error
    assert not StepExecution.objects.filter(run=run, step="Square").exists()


def test_non_list_output_before_expand_fails_without_retrying(workers, finished):
    run = finished(p.NotAListPipeline.trigger(None))

    assert run.status == RunStatus.FAILED
    assert "expand needs a list to iterate, got dict" in run.error
    assert StepExecution.objects.get(run=run, step="NotAList").attempts.count() == 1


def test_a_step_runs_on_the_queue_its_class_names(workers, finished):
    run = finished(p.OtherQueuePipeline.trigger(None))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert StepExecution.objects.get(run=run).queue == "other"
