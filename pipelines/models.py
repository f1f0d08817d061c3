"""The durable record: runs, their context, step executions, attempts and joins.

The database is the record of what should run; Redis only delivers ids. Every JSON column
is a ``StoredJSONField`` (:mod:`pipelines.values`), so a value reads back the same on
every database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q
from django.utils import timezone

from pipelines.values import StoredJSONField

if TYPE_CHECKING:
    from pipelines.context import RunContextHandle


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # a step is paused until an event arrives
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(models.TextChoices):
    ENQUEUED = "enqueued"
    RUNNING = "running"
    RETRYING = "retrying"  # failed, waiting for its backoff before the next attempt
    WAITING = "waiting"  # the body returned WaitForEvent; send_event completes it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"  # its worker died: the heartbeat stopped


class StepKind(models.TextChoices):
    STEP = "step"
    HALT = "halt", "halt handler"
    COMPENSATION = "compensation"


ACTIVE_RUN_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)
CLAIMABLE_STEP_STATUSES = (StepStatus.ENQUEUED, StepStatus.RETRYING)


class PipelineRun(models.Model):
    pipeline = models.CharField(max_length=200, db_index=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    input = StoredJSONField(null=True, blank=True)
    output = StoredJSONField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the run failed or was halted.")
    # NULL (not "") for "no key": the unique constraint must ignore runs without one.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="pipelines_run_unique_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="pipelines_run_status_idx")]
        permissions = [
            ("cancel_run", "Can cancel pipeline runs"),
            ("retry_run", "Can retry (resume) failed pipeline runs"),
            ("rerun_run", "Can re-run pipeline runs with the same input"),
            ("send_event", "Can send events to waiting pipeline runs"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} run {self.pk} ({self.status})"

    @property
    def context(self) -> RunContextHandle:
        """The run's global context; writes from here commit at once."""
        from pipelines.context import RunContextHandle

        return RunContextHandle(self)

    @property
    def is_finished(self) -> bool:
        return self.status not in ACTIVE_RUN_STATUSES

    def refresh(self) -> PipelineRun:
        self.refresh_from_db()
        return self

    def cancel(self, reason: str = "cancelled") -> PipelineRun:
        from pipelines.services import run_cancel

        return run_cancel(run_id=self.pk, reason=reason).refresh()

    def resume(self) -> PipelineRun:
        from pipelines.services import run_resume

        return run_resume(run_id=self.pk).refresh()

    def rerun(self) -> PipelineRun:
        from pipelines.services import run_rerun

        return run_rerun(run_id=self.pk)

    def send_event(self, name: str, payload: object = None) -> PipelineRun:
        from pipelines.services import run_send_event

        return run_send_event(run_id=self.pk, name=name, payload=payload).refresh()


class RunContext(models.Model):
    """One JSON document per run. Its row lock is also the run's mutex: every step
    completion and every run status change takes it first."""

    run = models.OneToOneField(
        PipelineRun, primary_key=True, on_delete=models.CASCADE, related_name="context_row"
    )
    data = StoredJSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"context of run {self.run_id}"


class JoinBarrier(models.Model):
    """Counts the branches of one divide/expand that have finished. Each finished branch
    costs one increment; the transaction that brings ``arrived`` to ``expected`` creates
    the join step, exactly once."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="barriers")
    node = models.CharField(max_length=200, help_text="The combine/collapse node to start.")
    expected = models.PositiveIntegerField()
    arrived = models.PositiveIntegerField(default=0)
    # The frame the join step runs in: the barrier (and branch) of the step that divided.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)
    parent_branch = models.PositiveIntegerField(null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"join {self.node} of run {self.run_id}: {self.arrived}/{self.expected}"


class StepExecution(models.Model):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    node = models.CharField(max_length=200, help_text="Node id in the pipeline graph.")
    step = models.CharField(max_length=200, help_text="Step class name.")
    kind = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.STEP)
    compensates = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compensations",
        help_text="For a compensation: the completed step it undoes.",
    )
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    attempt = models.PositiveIntegerField(default=1, help_text="The current (or last) attempt.")
    queue = models.CharField(max_length=100)
    payload = StoredJSONField(null=True, blank=True)
    output = StoredJSONField(null=True, blank=True)
    route = models.CharField(max_length=200, blank=True, help_text="Route chosen by divert.")
    barrier = models.ForeignKey(
        JoinBarrier, null=True, blank=True, on_delete=models.CASCADE, related_name="members"
    )
    branch_index = models.PositiveIntegerField(null=True, blank=True)
    # True on the execution whose output its branch reports to the barrier.
    reported = models.BooleanField(default=False)
    held = models.BooleanField(
        default=False,
        help_text="Succeeded after its run failed; resuming the run continues from it.",
    )
    worker = models.CharField(max_length=200, blank=True)
    rq_job = models.CharField(
        max_length=200, blank=True, help_text="The RQ job running it (it may be a predecessor's)."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    crash_count = models.PositiveIntegerField(
        default=0, help_text="Attempts lost because their worker died."
    )
    event_name = models.CharField(max_length=200, blank=True)
    event_deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "status"], name="pipelines_step_run_status_idx"),
            models.Index(fields=["status", "created_at"], name="pipelines_step_status_idx"),
            models.Index(
                fields=["barrier", "branch_index"],
                condition=Q(reported=True),
                name="pipelines_step_reported_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} ({self.node}) of run {self.run_id}: {self.status}"

    @property
    def idempotency_key(self) -> str:
        return f"pipelines-run{self.run_id}-step{self.pk}"


class StepAttempt(models.Model):
    execution = models.ForeignKey(StepExecution, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=AttemptStatus.choices)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    conflict_reruns = models.PositiveIntegerField(
        default=0, help_text="Times the body re-ran because a concurrent step took a key first."
    )

    class Meta:
        ordering = ["execution_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "number"], name="pipelines_attempt_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of step execution {self.execution_id}: {self.status}"


class ContextWrite(models.Model):
    """Append-only history of every context write."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="context_writes")
    key = models.CharField(max_length=255)
    value = StoredJSONField(null=True, blank=True)
    execution = models.ForeignKey(
        StepExecution, null=True, blank=True, on_delete=models.CASCADE, related_name="writes"
    )
    step = models.CharField(max_length=200, blank=True)
    attempt = models.PositiveIntegerField(null=True, blank=True)
    overwrite = models.BooleanField(default=False)
    written_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "key"], name="pipelines_ctxwrite_key_idx")]

    def __str__(self) -> str:
        return f"context[{self.key!r}] of run {self.run_id}"

    def writer(self) -> str:
        when = self.written_at.isoformat(timespec="seconds")
        if self.execution_id is None:
            return f"outside a step at {when}"
        return f"step {self.step} (execution {self.execution_id}) attempt {self.attempt} at {when}"


class Lease(models.Model):
    """A named, expiring lock held in the database, so that exactly one process across all
    machines runs the sweeper at a time, even when Redis is flushed or down."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"lease {self.name} held by {self.holder} until {self.expires_at}"
