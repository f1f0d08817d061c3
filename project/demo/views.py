"""Triggering a pipeline from a view: inside the request's transaction, enqueued on
commit, then on to the run's page."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from project.demo.forms import OrderForm
from project.demo.pipelines import FulfilOrder


@staff_member_required
@permission_required("pipelines.add_pipelinerun", raise_exception=True)
def order(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            # Your own writes would go here too: if anything raises, no run and no job.
            run = FulfilOrder.trigger(form.order())
        return redirect("pipelines:run", run_id=run.pk)
    return render(request, "demo/order.html", {"form": form})
