"""pipelines.testing, as a user's tests would use it: no Redis, no workers, the real
engine. The TestCase class runs under pytest here and under ``manage.py test`` in the
adoption test's generated project."""

from __future__ import annotations

import pytest
from django.test import TestCase

from pipelines import testing
from pipelines.models import StepAttempt
from pipelines.testing import PipelinesTestMixin
from tests.testapp import fault_pipelines as f
from tests.testapp import pipelines as p

pytestmark = pytest.mark.portable


class ChainTests(PipelinesTestMixin, TestCase):
    def test_a_chain_runs_to_completion_inside_the_test_transaction(self) -> None:
        run = self.run_pipeline(p.ChainPipeline, {"n": 1})

        self.assertRunSucceeded(run)
        self.assertTriggered(p.ChainPipeline, times=1, input={"n": 1})
        self.assertStepOutput(run, p.Double, run.output)
        assert testing.step_outputs(run, "Add") == [testing.step_output(run, p.Add)]

    def test_a_retry_runs_at_once_and_its_staged_writes_start_over(self) -> None:
        run = self.run_pipeline(p.FlakyPipeline, None)

        self.assertRunSucceeded(run)
        self.assertContextHas(run, "written_by_attempt", 2)
        attempts = StepAttempt.objects.filter(execution__run=run).order_by("number")
        assert list(attempts.values_list("status", flat=True)) == ["failed", "succeeded"]

    def test_failures_name_the_run_error_and_the_failed_step(self) -> None:
        run = self.run_pipeline(p.FailingPipeline, {"n": 1})

        self.assertRunStatus(run, "failed")
        with pytest.raises(AssertionError, match=r"has failed[\s\S]*step Explode\.1"):
            self.assertRunSucceeded(run)
        with pytest.raises(AssertionError, match=r"triggered 1 time\(s\), expected 2"):
            self.assertTriggered(p.FailingPipeline, times=2)
        with pytest.raises(AssertionError, match="context has no 'absent'"):
            self.assertContextHas(run, "absent")


def test_the_pytest_fixture_runs_waits_and_events(db, pipelines_inline):
    run = pipelines_inline.run(f.ApprovalPipeline, {})
    pipelines_inline.assert_status(run, "waiting")
    pipelines_inline.assert_context(run, "requested", True)

    run.send_event("approved", {"by": "test"})
    pipelines_inline.complete(run)

    pipelines_inline.assert_succeeded(run)
    assert run.output == {"applied_by": "test"}
    assert pipelines_inline.step_output(run, f.Apply) == {"applied_by": "test"}
    assert [r.pk for r in pipelines_inline.assert_triggered(f.ApprovalPipeline, input={})] == [
        run.pk
    ]


def test_nothing_reaches_redis(db, pipelines_inline, redis_conn):
    from pipelines.engine.delivery import get_queue

    pipelines_inline.run(p.DividePipeline, {"n": 0})
    p.ChainPipeline.trigger({"n": 2})  # triggered, not completed: stays in the database

    assert get_queue("pipelines").count == 0
