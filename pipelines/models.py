"""The durable record: runs, their context, step executions, attempts and joins.

The database is the record of what should run; Redis only delivers ids. Every JSON column
is a ``StoredJSONField`` (:mod:`pipelines.values`), so a value reads back the same on
every database.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pipelines.lifecycle import (
    ACTIVE_RUN_STATUSES,
    AttemptStatus,
    RunStatus,
    StepKind,
    StepStatus,
)
from pipelines.steering import steering
from pipelines.values import StoredJSONField


class PipelineDefinition(models.Model):
    """A pipeline's compiled graph, stored once per distinct graph and shared by every run
    triggered with it (see :mod:`pipelines.definitions`)."""

    hash = models.CharField(max_length=64, primary_key=True)
    pipeline = models.CharField(max_length=200)
    graph = StoredJSONField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.pipeline} definition {self.hash[:12]}"


class PipelineRun(models.Model):
    pipeline = models.CharField(max_length=200, db_index=True)
    definition = models.ForeignKey(
        PipelineDefinition,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
        help_text="The graph this run advances by: its pipeline as it was when triggered.",
    )
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
            # Runs without a key (NULL) never collide: NULLs are distinct in unique
            # constraints on PostgreSQL, SQLite and MySQL/MariaDB alike. No condition, since
            # MySQL/MariaDB would not create a conditional one at all.
            models.UniqueConstraint(
                fields=["pipeline", "idempotency_key"],
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
    def context(self) -> Any:
        """The run's global context (:class:`pipelines.controls.RunContextHandle`):
        reads of the committed values; writes from here commit at once."""
        return steering().context(self)

    @property
    def is_finished(self) -> bool:
        return self.status not in ACTIVE_RUN_STATUSES

    def refresh(self) -> PipelineRun:
        self.refresh_from_db()
        return self

    async def arefresh(self) -> PipelineRun:
        await self.arefresh_from_db()
        return self

    # Steering calls change this very object (and return it), like refresh_from_db: after
    # run.cancel(), run.status is "cancelled". Each a* twin runs the same call in Django's
    # thread for sync code, so async views use the same transactions and locks.

    def cancel(self, reason: str = "cancelled") -> PipelineRun:
        """Cancel the run (see :func:`pipelines.services.run_cancel`)."""
        steering().cancel(self, reason)
        return self

    async def acancel(self, reason: str = "cancelled") -> PipelineRun:
        return await sync_to_async(self.cancel)(reason)

    def resume(self) -> PipelineRun:
        """Resume a failed run from its failed steps."""
        steering().resume(self)
        return self

    async def aresume(self) -> PipelineRun:
        return await sync_to_async(self.resume)()

    def rerun(self) -> PipelineRun:
        """A new run with the same input (this one is unchanged); returns the new run."""
        return steering().rerun(self)

    async def arerun(self) -> PipelineRun:
        return await sync_to_async(self.rerun)()

    def send_event(self, name: str, payload: object = None) -> PipelineRun:
        """Deliver an event to the step waiting for it."""
        steering().send_event(self, name, payload)
        return self

    async def asend_event(self, name: str, payload: object = None) -> PipelineRun:
        return await sync_to_async(self.send_event)(name, payload)


class RunContext(models.Model):
    """One JSON document per run. Writers hold the run's row lock (the run's mutex)
    while they change it; on PostgreSQL a write from outside a step is one statement that
    the context row's own lock serialises."""

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
        max_length=200,
        blank=True,
        help_text=(
            "The RQ job running it (it may be a predecessor's), or, for an expand item not "
            "started yet, the job that will."
        ),
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


class Reachability(models.Model):
    """When the workers' sweepers last reached the database, and since when they have
    without a gap, by the database's clock: silence means death only once every worker
    has had the reclaim time of working access to beat in (see engine/witness.py)."""

    name = models.CharField(max_length=100, primary_key=True)
    seen_at = models.DateTimeField()
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} reachable since {self.since} (last seen {self.seen_at})"
