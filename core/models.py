"""Background jobs: one row per unit of long work, written by `core.tasks.TenantTask`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class Job(TenantModel):
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "kind", "status"]),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_cancellable(self) -> bool:
        """Whether people may cancel it (its kind says; privacy clean-up may not)."""
        from .jobs import job_is_cancellable

        return job_is_cancellable(self)

    @property
    def is_stale(self) -> bool:
        """Running, but its worker has not reported for a long time (killed?)."""
        if self.status != JobStatus.RUNNING:
            return False
        seen = self.heartbeat_at or self.started_at or self.created_at
        return (timezone.now() - seen).total_seconds() > settings.JOB_STALE_AFTER_SECONDS


class IdempotencyKey(TenantModel):
    """The first answer to an API write sent with an `Idempotency-Key` header
    (core/api/idempotency.py): a retry with the same key gets it again instead of
    applying the write twice. Keys belong to one organisation and one API key (or
    member), and are forgotten after `IDEMPOTENCY_KEY_HOURS`."""

    key = models.CharField(max_length=255)
    # who sent it: "api_key:<id>" or "user:<id>"
    principal = models.CharField(max_length=40)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=1000)
    # SHA-256 of the method, path, query and body: the same key with another request is refused
    fingerprint = models.CharField(max_length=64)
    # null while the first request is being answered
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "principal", "key"], name="idempotency_org_principal_key"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "expires_at"], name="idempotency_org_expiry")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"


class ScheduledRun(models.Model):
    """One row per periodic task per slot of its schedule (core/scheduling.py): the
    scheduler that inserts it sends the task; any other scheduler started by mistake
    (a second `celery beat`, a second `worker --beat`, on this host or another) finds
    the row there and sends nothing. A platform table, not an organisation's."""

    name = models.CharField(max_length=200)  # the schedule entry's name (config/celery.py)
    slot = models.DateTimeField()  # the start of the slot (UTC)
    claimed_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=200, blank=True)  # host and process id

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "slot"], name="scheduled_run_name_slot")
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.slot:%Y-%m-%d %H:%M:%S}"
