"""Async views that use the async API, as a project's own async views would."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse

from pipelines.models import PipelineRun
from tests.testapp import pipelines as p


def _body(request: HttpRequest) -> Any:
    return json.loads(request.body or b"null")


def _state(run: PipelineRun) -> JsonResponse:
    return JsonResponse({"id": run.pk, "status": run.status, "output": run.output})


async def trigger(request: HttpRequest) -> JsonResponse:
    run = await p.ChainPipeline.atrigger(_body(request), idempotency_key=None)
    return _state(run)


async def show(request: HttpRequest, run_id: int) -> JsonResponse:
    run = await PipelineRun.objects.aget(pk=run_id)
    await run.arefresh()
    key = request.GET.get("key", "")
    return JsonResponse(
        {
            "status": run.status,
            "has": await run.context.ahas(key),
            "value": await run.context.aget(key, "default"),
            "keys": await run.context.akeys(),
        }
    )


async def steer(request: HttpRequest, run_id: int, action: str) -> JsonResponse:
    run = await PipelineRun.objects.aget(pk=run_id)
    data = _body(request) or {}
    if action == "set":
        await run.context.aset(data["key"], data["value"])
    elif action == "cancel":
        assert await run.acancel(reason="from an async view") is run
    elif action == "resume":
        assert await run.aresume() is run
    elif action == "event":
        assert await run.asend_event(data["name"], data["payload"]) is run
    elif action == "rerun":
        run = await run.arerun()
    return _state(run)
