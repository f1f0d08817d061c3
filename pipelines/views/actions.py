"""State-changing views: POST only, CSRF-checked, permission-gated; they call services."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from pipelines import services
from pipelines.exceptions import InputValueError, PipelineError
from pipelines.inputs import parse_json_text, parse_text
from pipelines.masking import mask_text
from pipelines.models import PipelineRun
from pipelines.views.access import action

Outcome = tuple[PipelineRun, str]  # the run to show next, and what to tell the user


def _perform(
    request: HttpRequest, run_id: int, call: Callable[[PipelineRun], Outcome]
) -> HttpResponse:
    run = get_object_or_404(PipelineRun, pk=run_id)
    try:
        shown, message = call(run)
    except InputValueError:
        raise  # bad input: a 400 with the message (access.answers_bad_input)
    except (PipelineError, ValueError) as exc:
        messages.error(request, mask_text(str(exc)))  # it may quote the run's error
        return redirect("pipelines:run", run_id=run.pk)
    messages.success(request, message)
    return redirect("pipelines:run", run_id=shown.pk)


@action("pipelines.cancel_run")
def cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    reason = (
        parse_text(request.POST.get("reason", ""), what="reason", max_length=500)
        or f"cancelled by {request.user}"
    )

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
    name = parse_text(request.POST.get("name", ""), what="event name", blank=False)
    payload = parse_json_text(request.POST.get("payload", "").strip() or "null", what="The payload")

    def call(run: PipelineRun) -> Outcome:
        services.run_send_event(run_id=run.pk, name=name, payload=payload)
        return run, f"Event {name!r} delivered to run {run.pk}."

    return _perform(request, run_id, call)
