"""State-changing views: POST only, CSRF-checked, permission-gated; they call services."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from pipelines import services
from pipelines.exceptions import PipelineError
from pipelines.models import PipelineRun
from pipelines.views.access import action


def _done(request: HttpRequest, run: PipelineRun, message: str) -> HttpResponse:
    messages.success(request, message)
    return redirect("pipelines:run", run_id=run.pk)


def _refused(request: HttpRequest, run: PipelineRun, error: Exception) -> HttpResponse:
    messages.error(request, str(error))
    return redirect("pipelines:run", run_id=run.pk)


@action("pipelines.cancel_run")
def cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    reason = request.POST.get("reason", "").strip()[:500] or f"cancelled by {request.user}"
    try:
        services.run_cancel(run_id=run.pk, reason=reason)
    except PipelineError as exc:
        return _refused(request, run, exc)
    return _done(request, run, f"Run {run.pk} cancelled.")


@action("pipelines.retry_run")
def retry(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    try:
        services.run_resume(run_id=run.pk)
    except PipelineError as exc:
        return _refused(request, run, exc)
    return _done(request, run, f"Run {run.pk} resumed from its failed steps.")


@action("pipelines.rerun_run")
def rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    try:
        new = services.run_rerun(run_id=run.pk)
    except PipelineError as exc:
        return _refused(request, run, exc)
    return _done(request, new, f"Run {new.pk} started with the input of run {run.pk}.")


@action("pipelines.send_event")
def send_event(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    name = request.POST.get("name", "").strip()
    try:
        payload = json.loads(request.POST.get("payload", "").strip() or "null")
    except json.JSONDecodeError as exc:
        return _refused(
            request,
            run,
            ValueError(
                f"The payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
            ),
        )
    try:
        services.run_send_event(run_id=run.pk, name=name, payload=payload)
    except PipelineError as exc:
        return _refused(request, run, exc)
    return _done(request, run, f"Event {name!r} delivered to run {run.pk}.")
