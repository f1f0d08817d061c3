"""The Django admin for runs, steps and context: read-only (the engine owns these rows),
with actions that call the same services as the dashboard."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db import DataError, transaction
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from pipelines import selectors, services
from pipelines.exceptions import InvalidValueError, PipelineError
from pipelines.masking import mask, mask_entry, mask_text
from pipelines.models import ContextWrite, PipelineRun, StepAttempt, StepExecution
from pipelines.templatetags.pipelines_tags import elapsed, pretty_json
from pipelines.timestamps import timestamp
from pipelines.values import check_text

INLINE_ROWS = 50
LIST_VALUE_CHARS = 80  # a value in a list is one line; its page shows all of it


def badge(status: str) -> SafeString:
    return format_html('<span class="pl-badge pl-{}">{}</span>', status, status)


class RunLinkMixin:
    """A column linking to the run's dashboard page (changelists select_related the run)."""

    @admin.display(description="run", ordering="run_id")
    def run_link(self, obj: StepExecution | ContextWrite) -> SafeString:
        return format_html(
            '<a href="{}">#{} {}</a>',
            reverse("pipelines:run", args=[obj.run_id]),
            obj.run_id,
            obj.run.pipeline,
        )


def pretty(value: Any) -> SafeString:
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', pretty_json(value))


def masked_json(field: str) -> Any:
    """An admin column showing a JSON field pretty-printed, secret-looking keys masked."""

    @admin.display(description=field)
    def show(self: Any, obj: Any) -> SafeString:
        return pretty(mask(getattr(obj, field)))

    return show


def nowrap(text: str) -> SafeString:
    """A short value kept on one line in narrow list columns (2026-12-02 03:39:06)."""
    return format_html('<span style="white-space:nowrap">{}</span>', text)


def moment(field: str, description: str | None = None) -> Any:
    """A column showing a timestamp to the second, as the dashboard does."""

    @admin.display(description=description or field.replace("_at", ""), ordering=field)
    def show(self: Any, obj: Any) -> SafeString:
        return nowrap(timestamp(getattr(obj, field)))

    return show


def masked_text(field: str) -> Any:
    """An admin column showing a text field (an error, a traceback) with secrets masked."""

    @admin.display(description=field)
    def show(self: Any, obj: Any) -> SafeString:
        return format_html(
            '<pre style="white-space:pre-wrap;margin:0">{}</pre>',
            mask_text(getattr(obj, field) or ""),
        )

    return show


class StatusBadgeMixin:
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: PipelineRun | StepExecution | StepAttempt) -> SafeString:
        return badge(obj.status)


class ShownValueMixin:
    @admin.display(description="value")
    def shown_value(self, obj: ContextWrite) -> SafeString:
        return pretty(mask_entry(obj.key, obj.value))

    @admin.display(description="value")
    def short_value(self, obj: ContextWrite) -> SafeString:
        text = json.dumps(mask_entry(obj.key, obj.value), ensure_ascii=False)
        if len(text) > LIST_VALUE_CHARS:
            text = text[: LIST_VALUE_CHARS - 1] + "…"
        return format_html("<code>{}</code>", text)

    # A plain word, not the admin's boolean icon: a first write is normal, not a red ✗.
    @admin.display(description="write", ordering="overwrite")
    def write_kind(self, obj: ContextWrite) -> str:
        return "overwrite" if obj.overwrite else "set"

    written = moment("written_at", "written")


class ReadOnlyMixin:
    """Engine-owned rows: viewable, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, StatusBadgeMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ("pipelines/admin.css",)}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A filter value with NUL reaches PostgreSQL, which refuses it (a 500 otherwise).
        for name, values in request.GET.lists():
            for value in values:
                try:
                    check_text(value or "-", what=name, max_length=10_000)
                except InvalidValueError as exc:
                    return HttpResponseBadRequest(str(exc), content_type="text/plain")
        try:
            # A savepoint: under ATOMIC_REQUESTS the request's transaction goes on.
            with transaction.atomic():
                return super().changelist_view(request, extra_context)
        except (OverflowError, DataError):
            # A date filter the admin parses but the database cannot hold, such as
            # created_at__gte=0001-01-01T00:00+01:00 (year 0) or an offset of -23:59 on
            # 9999-12-31: the list's count query fails before anything is rendered.
            return HttpResponseBadRequest(
                "a value in the filters is out of range", content_type="text/plain"
            )


class FirstRowsFormSet(BaseInlineFormSet):
    """Inlines show the first rows only; a run may have 10,000 steps."""

    def get_queryset(self) -> QuerySet[Any]:
        # Evaluated once: the formset asks for its queryset once per form (its length,
        # then row i), and a fresh slice each time would cost two queries per row.
        if not hasattr(self, "_first_rows"):
            self._first_rows = super().get_queryset()[:INLINE_ROWS]
        return self._first_rows


class ReadOnlyInline(ReadOnlyMixin, StatusBadgeMixin, admin.TabularInline):
    formset = FirstRowsFormSet
    extra = 0
    can_delete = False
    show_change_link = True


class StepInline(ReadOnlyInline):
    model = StepExecution
    fields = ("node", "kind", "status_badge", "attempt", "worker", "started", "took")
    readonly_fields = fields
    started = moment("started_at")

    @admin.display(description="took")
    def took(self, obj: StepExecution) -> SafeString:
        return nowrap(elapsed(obj.started_at, obj.finished_at) if obj.finished_at else "-")

    verbose_name_plural = f"Step executions (first {INLINE_ROWS}; all on the dashboard)"


class ContextWriteInline(ShownValueMixin, ReadOnlyInline):
    model = ContextWrite
    fields = ("key", "short_value", "step", "attempt", "write_kind", "written")
    readonly_fields = fields
    verbose_name_plural = f"Context history (first {INLINE_ROWS} writes)"


def _act(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    runs: QuerySet[PipelineRun],
    verb: str,
    call: Any,
) -> None:
    done, refused = [], []
    for run in runs.only("id"):
        try:
            call(run_id=run.pk)
            done.append(run.pk)
        except PipelineError as exc:
            refused.append(f"#{run.pk}: {mask_text(str(exc))}")
    if done:
        modeladmin.message_user(request, f"{verb}: {', '.join(f'#{i}' for i in done)}")
    for message in refused:
        modeladmin.message_user(request, message, messages.ERROR)


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "pipeline",
        "status_badge",
        "progress",
        "created",
        "duration",
        "dashboard",
    )
    list_filter = ("status", "pipeline", "created_at")
    search_fields = ("=id", "idempotency_key", "pipeline")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = (StepInline, ContextWriteInline)
    actions = ("cancel_runs", "retry_runs", "rerun_runs")
    fields = (
        "pipeline",
        "status_badge",
        "dashboard",
        "idempotency_key_masked",
        "created",
        "started",
        "finished",
        "error_masked",
        "input_pretty",
        "output_pretty",
        "context_pretty",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PipelineRun]:
        return selectors.runs_with_progress(super().get_queryset(request))

    @admin.display(description="steps done")
    def progress(self, obj: PipelineRun) -> str:
        return f"{getattr(obj, 'steps_done', '?')}/{getattr(obj, 'steps_total', '?')}"

    @admin.display(description="duration")
    def duration(self, obj: PipelineRun) -> str:
        return elapsed(obj.created_at, obj.finished_at)

    @admin.display(description="dashboard")
    def dashboard(self, obj: PipelineRun) -> SafeString:
        return format_html('<a href="{}">run page →</a>', reverse("pipelines:run", args=[obj.pk]))

    created = moment("created_at")
    started = moment("started_at")
    finished = moment("finished_at")
    error_masked = masked_text("error")
    idempotency_key_masked = masked_text("idempotency_key")
    input_pretty = masked_json("input")
    output_pretty = masked_json("output")

    @admin.display(description="context")
    def context_pretty(self, obj: PipelineRun) -> SafeString:
        data = getattr(getattr(obj, "context_row", None), "data", None) or {}
        return pretty({key: mask_entry(key, value) for key, value in sorted(data.items())})

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pipelines.cancel_run")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pipelines.retry_run")

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pipelines.rerun_run")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        reason = f"cancelled by {request.user} in the admin"
        _act(
            self,
            request,
            queryset,
            "Cancelled",
            lambda run_id: services.run_cancel(run_id=run_id, reason=reason),
        )

    @admin.action(description="Retry failed steps of selected runs", permissions=["retry"])
    def retry_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        _act(self, request, queryset, "Resumed", services.run_resume)

    @admin.action(description="Re-run selected runs with the same input", permissions=["rerun"])
    def rerun_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        _act(self, request, queryset, "Re-ran", services.run_rerun)


class AttemptInline(ReadOnlyInline):
    model = StepAttempt
    fields = (
        "number",
        "status_badge",
        "worker",
        "started",
        "finished",
        "error_masked",
        "traceback_masked",
    )
    readonly_fields = fields
    show_change_link = False
    started = moment("started_at")
    finished = moment("finished_at")
    error_masked = masked_text("error")
    traceback_masked = masked_text("traceback")


@admin.register(StepExecution)
class StepExecutionAdmin(RunLinkMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "run_link",
        "node",
        "kind",
        "status_badge",
        "attempt",
        "started",
        "took",
    )
    list_select_related = ("run",)
    ordering = ("-id",)
    list_filter = ("status", "kind", "run__pipeline")
    search_fields = ("=run__id", "node", "step", "worker")
    date_hierarchy = "created_at"
    inlines = (AttemptInline,)
    fields = (
        "run_link",
        "node",
        "step",
        "kind",
        "status_badge",
        "attempt",
        "queue",
        "route",
        "event_name",
        "worker",
        "created",
        "started",
        "finished",
        "error_masked",
        "payload_pretty",
        "output_pretty",
    )
    readonly_fields = fields
    created = moment("created_at")
    started = moment("started_at")
    finished = moment("finished_at")
    took = StepInline.took
    error_masked = masked_text("error")
    payload_pretty = masked_json("payload")
    output_pretty = masked_json("output")


@admin.register(ContextWrite)
class ContextWriteAdmin(RunLinkMixin, ShownValueMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "run_link",
        "key",
        "short_value",
        "step",
        "attempt",
        "write_kind",
        "written",
    )
    list_select_related = ("run",)
    list_filter = ("overwrite", "run__pipeline")
    search_fields = ("=run__id", "key")
    date_hierarchy = "written_at"
    ordering = ("-id",)
    fields = ("id", "run_link", "key", "shown_value", "step", "attempt", "write_kind", "written")
    readonly_fields = fields
