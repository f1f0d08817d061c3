"""``manage.py check`` validates registered pipelines against the settings."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from pipelines import Pipeline, Step, registry, start


class NowhereStep(Step):
    queue = "no-such-queue"

    def execute(self, payload):
        return payload


@pytest.fixture
def nowhere_pipeline():
    class NowherePipeline(Pipeline):
        name = "nowhere-check"
        definition = start(NowhereStep)

    yield NowherePipeline
    registry.unregister("nowhere-check")


def test_check_passes_for_the_registered_pipelines():
    call_command("check")


def test_check_reports_a_step_queue_missing_from_rq_queues(nowhere_pipeline):
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    message = str(error.value)
    assert "pipelines.E002" in message
    assert "step NowhereStep uses queue 'no-such-queue', which is not in RQ_QUEUES" in message
