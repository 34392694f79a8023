"""Audiences: saved, named lists of customers that campaigns send to (issue 10).

An `Audience` keeps its definition (CONTRACT.md, "Recommendations and audiences":
`segments`, `rules`, `goal`, `response`, `lookalike`, `location`), the figures of
its last build (size, reach by channel, expected conversions, the model behind a
scored kind, the fairness check, the best channel) and its members. It is rebuilt
by a job after each pipeline run and whenever its definition changes.

`AudienceMember` is one customer in one audience with a score (null for kinds that
only select) and a rank: personal data, so erasure and both exports cover it.
Row-level security covers both tables (accounts/rls.py applies it to every
TenantModel table after migrate).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = ["Audience", "AudienceMember", "AudienceStatus"]


class AudienceStatus(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Audience(TenantModel):
    name = models.CharField(max_length=200)
    definition = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=AudienceStatus.choices, default=AudienceStatus.BUILDING
    )
    message = models.CharField(max_length=500, blank=True)  # why a build failed
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    refreshed_at = models.DateTimeField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0)
    candidates = models.PositiveIntegerField(default=0)  # listed before size/min_score
    reachable_email = models.PositiveIntegerField(default=0)
    reachable_sms = models.PositiveIntegerField(default=0)
    unplaced = models.PositiveIntegerField(null=True, blank=True)
    expected_conversions = models.FloatField(null=True, blank=True)
    model = models.JSONField(null=True, blank=True)  # evaluation.ModelInfo.as_api()
    fairness = models.JSONField(default=list, blank=True)
    best_channel = models.JSONField(null=True, blank=True)
    notes = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["organization", "name"], name="audience_org_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        return str((self.definition or {}).get("kind") or "")


class AudienceMember(TenantModel):
    audience = models.ForeignKey(
        Audience, on_delete=models.CASCADE, related_name="members", db_index=False
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    rank = models.PositiveIntegerField()
    score = models.FloatField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "audience", "customer"], name="audmember_org_aud_customer"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "audience", "rank"], name="audmember_org_aud_rank"
            ),
            models.Index(fields=["organization", "customer"], name="audmember_org_customer"),
        ]

    def __str__(self) -> str:
        return f"Customer {self.customer_id} in audience {self.audience_id}"
