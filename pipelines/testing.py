"""Helpers for testing your own pipelines: runs go to completion in the test process.

No Redis and no workers: triggered steps are kept out of Redis and run here, one after
another, through the real engine (the same claims, commits, context rules and retries;
a retry runs at once instead of after its backoff). Works in Django's ``TestCase`` (one
transaction per test) and in pytest-django's ``db``/``transactional_db`` tests::

    from django.test import TestCase
    from pipelines.testing import PipelinesTestMixin

    class ShipOrderTests(PipelinesTestMixin, TestCase):
        def test_ships(self) -> None:
            run = self.run_pipeline(ShipOrder, {"customer_id": 7})
            self.assertRunSucceeded(run)
            self.assertContextHas(run, "customer_id", 7)

With pytest, the ``pipelines_inline`` fixture (loaded automatically) gives the same as
an :class:`InlinePipelines` object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.test import override_settings

from pipelines.engine.delivery import capture_deliveries
from pipelines.engine.runner import run_execution
from pipelines.lifecycle import CLAIMABLE_STEP_STATUSES, RunStatus, run_state
from pipelines.models import PipelineRun, StepExecution
from pipelines.pipeline import Pipeline

_MISSING: Any = object()
MAX_STEPS = 10_000


def _name(pipeline: type[Pipeline] | str) -> str:
    return pipeline if isinstance(pipeline, str) else pipeline.name


def _step_name(step: type | str) -> str:
    return step if isinstance(step, str) else step.__name__


def run_to_completion(run: PipelineRun, *, max_steps: int = MAX_STEPS) -> PipelineRun:
    """Run the run's steps in this process until none is left to run; returns the run,
    refreshed. A run that waits for an event stops there (status ``waiting``): send the
    event and call this again."""
    ran = 0
    while True:
        pending = list(
            StepExecution.objects.filter(run=run, status__in=CLAIMABLE_STEP_STATUSES)
            .order_by("id")
            .values_list("pk", "attempt")
        )
        if not pending:
            break
        for execution_id, attempt in pending:
            run_execution(execution_id, attempt, worker="pipelines.testing")
            ran += 1
            if ran > max_steps:
                raise AssertionError(f"run {run.pk} did not finish within {max_steps} steps")
    return run.refresh()


def _describe(run: PipelineRun) -> str:
    failed = StepExecution.objects.filter(run=run).exclude(error="").order_by("id")
    lines = [f"run {run.pk} ({run.pipeline}) {run_state(run.status)}"]
    if run.error:
        lines.append(f"error: {run.error}")
    lines += [f"  step {s.node} ({s.status}, attempt {s.attempt}): {s.error}" for s in failed]
    return "\n".join(lines)


def assert_run_succeeded(run: PipelineRun) -> None:
    run.refresh()
    if run.status != RunStatus.SUCCEEDED:
        raise AssertionError(_describe(run))


def assert_run_status(run: PipelineRun, status: str) -> None:
    run.refresh()
    if run.status != status:
        raise AssertionError(f"expected {status}: {_describe(run)}")


def assert_context(run: PipelineRun, key: str, value: Any = _MISSING) -> None:
    """The run's context holds ``key`` (with ``value``, when given)."""
    data = run.context.to_dict()
    if key not in data:
        raise AssertionError(f"run {run.pk}: context has no {key!r}; keys: {sorted(data)}")
    if value is not _MISSING and data[key] != value:
        raise AssertionError(f"run {run.pk}: context[{key!r}] is {data[key]!r}, not {value!r}")


def step_outputs(run: PipelineRun, step: type | str) -> list[Any]:
    """The outputs of a step class's succeeded executions in the run, in order."""
    return list(
        StepExecution.objects.filter(run=run, step=_step_name(step), status="succeeded")
        .order_by("id")
        .values_list("output", flat=True)
    )


def step_output(run: PipelineRun, step: type | str) -> Any:
    """The output of the one succeeded execution of ``step`` in the run."""
    outputs = step_outputs(run, step)
    if len(outputs) != 1:
        raise AssertionError(
            f"run {run.pk}: step {_step_name(step)} succeeded {len(outputs)} times, not once"
        )
    return outputs[0]


def triggered_runs(pipeline: type[Pipeline] | str, input: Any = _MISSING) -> list[PipelineRun]:
    runs = PipelineRun.objects.filter(pipeline=_name(pipeline)).order_by("id")
    # Compared in Python: JSON equality in SQL differs from one database to another.
    return [run for run in runs if input is _MISSING or run.input == input]


def assert_triggered(
    pipeline: type[Pipeline] | str, *, times: int | None = None, input: Any = _MISSING
) -> list[PipelineRun]:
    """The pipeline was triggered (``times`` times, with ``input``, when given)."""
    runs = triggered_runs(pipeline, input)
    with_input = "" if input is _MISSING else f" with input {input!r}"
    if (times is None and not runs) or (times is not None and len(runs) != times):
        expected = "at least once" if times is None else f"{times} time(s)"
        raise AssertionError(
            f"{_name(pipeline)} was triggered{with_input} {len(runs)} time(s), expected {expected}"
        )
    return runs


class InlinePipelines:
    """Keeps triggered steps out of Redis while active; runs them on demand."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __enter__(self) -> InlinePipelines:
        self._stack.enter_context(capture_deliveries())
        # No heartbeat thread beating beside the test (a second database connection that
        # would wait on the test's own transaction); nothing reclaims steps here anyway.
        self._stack.enter_context(override_settings(PIPELINES_HEARTBEAT_INTERVAL=3600.0))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, pipeline: type[Pipeline], input: Any = None, **kwargs: Any) -> PipelineRun:
        """Trigger ``pipeline`` and run it to completion."""
        return run_to_completion(pipeline.trigger(input, **kwargs))

    def complete(self, run: PipelineRun) -> PipelineRun:
        return run_to_completion(run)

    assert_succeeded = staticmethod(assert_run_succeeded)
    assert_status = staticmethod(assert_run_status)
    assert_context = staticmethod(assert_context)
    assert_triggered = staticmethod(assert_triggered)
    step_output = staticmethod(step_output)
    step_outputs = staticmethod(step_outputs)


@contextmanager
def inline_pipelines() -> Iterator[InlinePipelines]:
    with InlinePipelines() as inline:
        yield inline


class PipelinesTestMixin:
    """For ``django.test.TestCase`` (or ``TransactionTestCase``) subclasses."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        inline = InlinePipelines().__enter__()
        self.addCleanup(inline.__exit__)  # type: ignore[attr-defined]
        self.pipelines = inline

    def run_pipeline(self, pipeline: type[Pipeline], input: Any = None, **kw: Any) -> PipelineRun:
        return self.pipelines.run(pipeline, input, **kw)

    def complete_run(self, run: PipelineRun) -> PipelineRun:
        return run_to_completion(run)

    def assertRunSucceeded(self, run: PipelineRun) -> None:
        assert_run_succeeded(run)

    def assertRunStatus(self, run: PipelineRun, status: str) -> None:
        assert_run_status(run, status)

    def assertContextHas(self, run: PipelineRun, key: str, value: Any = _MISSING) -> None:
        assert_context(run, key, value)

    def assertTriggered(
        self, pipeline: type[Pipeline] | str, *, times: int | None = None, input: Any = _MISSING
    ) -> list[PipelineRun]:
        return assert_triggered(pipeline, times=times, input=input)

    def assertStepOutput(self, run: PipelineRun, step: type | str, expected: Any) -> None:
        output = step_output(run, step)
        if output != expected:
            raise AssertionError(
                f"run {run.pk}: step {_step_name(step)} returned {output!r}, not {expected!r}"
            )
