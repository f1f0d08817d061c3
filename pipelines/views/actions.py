"""State-changing views: POST only, CSRF-checked, permission-gated; they call services."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from pipelines import services
from pipelines.exceptions import PipelineError
from pipelines.models import PipelineRun
from pipelines.views.access import action

Outcome = tuple[PipelineRun, str]  # the run to show next, and what to tell the user


def _perform(
    request: HttpRequest, run_id: int, call: Callable[[PipelineRun], Outcome]
) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    try:
        shown, message = call(run)
    except (PipelineError, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect("pipelines:run", run_id=run.pk)
    messages.success(request, message)
    return redirect("pipelines:run", run_id=shown.pk)


@action("pipelines.cancel_run")
def cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    reason = request.POST.get("reason", "").strip()[:500] or f"cancelled by {request.user}"

    def call(run: PipelineRun) -> Outcome:
        return services.run_cancel(run_id=run.pk, reason=reason), f"Run {run.pk} cancelled."

    return _perform(request, run_id, call)


@action("pipelines.retry_run")
def retry(request: HttpRequest, run_id: int) -> HttpResponse:
    def call(run: PipelineRun) -> Outcome:
        resumed = services.run_resume(run_id=run.pk)
        return resumed, f"Run {run.pk} resumed from its failed steps."

    return _perform(request, run_id, call)


@action("pipelines.rerun_run")
def rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    def call(run: PipelineRun) -> Outcome:
        new = services.run_rerun(run_id=run.pk)
        return new, f"Run {new.pk} started with the input of run {run.pk}."

    return _perform(request, run_id, call)


@action("pipelines.send_event")
def send_event(request: HttpRequest, run_id: int) -> HttpResponse:
    name = request.POST.get("name", "").strip()

    def call(run: PipelineRun) -> Outcome:
        try:
            payload = json.loads(request.POST.get("payload", "").strip() or "null")
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"The payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
            ) from None
        services.run_send_event(run_id=run.pk, name=name, payload=payload)
        return run, f"Event {name!r} delivered to run {run.pk}."

    return _perform(request, run_id, call)
