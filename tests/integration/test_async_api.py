"""The async API from async views (Django's async test client), and steering calls that
update the object they are called on. Steps run in the test process (pipelines.testing)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from pipelines.models import PipelineRun, RunStatus
from pipelines.testing import inline_pipelines, run_to_completion
from tests.testapp import fault_pipelines as f
from tests.testapp import pipelines as p

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.portable,
    pytest.mark.urls("tests.testapp.urls"),
]


@pytest.fixture
def inline():
    with inline_pipelines() as pipelines:
        yield pipelines


def call(method: str, url: str, data: object = None) -> dict:
    client = AsyncClient()
    if method == "get":
        response = async_to_sync(client.get)(url)
    else:
        response = async_to_sync(client.post)(
            url, json.dumps(data), content_type="application/json"
        )
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_trigger_read_and_write_the_context_from_async_views(inline):
    triggered = call("post", "/async/trigger/", {"n": 1})
    assert triggered["status"] == "pending"

    run = run_to_completion(PipelineRun.objects.get(pk=triggered["id"]))
    assert run.status == RunStatus.SUCCEEDED

    call("post", f"/async/runs/{run.pk}/set/", {"key": "note", "value": [1, "two"]})
    shown = call("get", f"/async/runs/{run.pk}/?key=note")
    assert shown == {
        "status": "succeeded",
        "has": True,
        "value": [1, "two"],
        "keys": sorted(run.context.keys()),
    }
    assert call("get", f"/async/runs/{run.pk}/?key=absent")["value"] == "default"


def test_cancel_resume_send_event_and_rerun_from_async_views(inline):
    waiting = inline.run(f.ApprovalPipeline, {})
    assert waiting.status == RunStatus.WAITING
    assert (
        call(
            "post",
            f"/async/runs/{waiting.pk}/event/",
            {"name": "approved", "payload": {"by": "async"}},
        )["status"]
        == "running"
    )
    assert inline.complete(waiting).output == {"applied_by": "async"}

    failed = inline.run(p.FailingPipeline, {"n": 1})
    assert failed.status == RunStatus.FAILED
    assert call("post", f"/async/runs/{failed.pk}/resume/")["status"] == "running"

    pending = p.ChainPipeline.trigger({"n": 1})
    cancelled = call("post", f"/async/runs/{pending.pk}/cancel/")
    assert cancelled["status"] == "cancelled"

    again = call("post", f"/async/runs/{pending.pk}/rerun/")
    assert again["id"] != pending.pk
    assert run_to_completion(PipelineRun.objects.get(pk=again["id"])).status == "succeeded"


def test_steering_calls_update_the_object_they_are_called_on(inline):
    waiting = inline.run(f.ApprovalPipeline, {})
    assert waiting.send_event("approved", {"by": "ops"}) is waiting
    assert waiting.status == RunStatus.RUNNING

    failed = inline.run(p.FailingPipeline, {"n": 1})
    assert failed.resume() is failed
    assert failed.status == RunStatus.RUNNING
    assert failed.error == ""

    pending = p.ChainPipeline.trigger({"n": 1})
    assert pending.cancel(reason="changed my mind") is pending
    assert pending.status == RunStatus.CANCELLED
    assert pending.error == "changed my mind"
