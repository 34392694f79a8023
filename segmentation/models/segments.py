"""Segments, segment history and personas (issue 4).

A `SegmentationRun` is one pass of the segmentation step for an organisation.
Exactly one run per organisation is live (`is_live`); a new run replaces it in
one transaction. `Segment` rows outlive runs: a segment found again (same group
of customers) keeps its row, its id and its persona; one not found again is
retired (`is_active=False`) and kept for history. `SegmentMembership` is the
history: one row per customer, segment and run.

Every secondary index and unique constraint leads with `organization`, and
foreign keys to tenant tables carry no index of their own (DESIGN: tenancy).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import TenantModel, organization_field

__all__ = [
    "Persona",
    "RunStatus",
    "Segment",
    "SegmentKind",
    "SegmentMembership",
    "SegmentationRun",
    "SegmentationSettings",
]


class SegmentationSettings(TenantModel):
    """Owner-set bounds for the clustering of one organisation (one row each)."""

    k_min = models.PositiveSmallIntegerField(
        default=2, help_text="Fewest segments the clustering may return."
    )
    k_max = models.PositiveSmallIntegerField(
        default=8, help_text="Most segments the clustering may return."
    )
    min_segment_share = models.FloatField(
        default=0.02, help_text="Smallest segment, as a share of customers with orders."
    )
    min_segment_size = models.PositiveIntegerField(
        default=10, help_text="Smallest segment, in customers."
    )
    seed = models.IntegerField(default=0, help_text="Random seed: same data, same segments.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="segsettings_org_unique"),
            models.CheckConstraint(
                condition=Q(k_min__gte=2) & Q(k_max__gte=models.F("k_min")) & Q(k_max__lte=20),
                name="segsettings_k_bounds",
            ),
        ]
        verbose_name_plural = "segmentation settings"

    def __str__(self) -> str:
        return f"Segmentation settings (k {self.k_min}–{self.k_max})"

    def as_params(self) -> dict:
        return {
            "k_min": self.k_min,
            "k_max": self.k_max,
            "min_share": self.min_segment_share,
            "min_count": self.min_segment_size,
            "seed": self.seed,
        }


class RunStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SegmentationRun(TenantModel):
    """One segmentation of an organisation's customers as of a date.

    A run is written only when it has succeeded, in the same transaction that
    makes it live; a failed run leaves its reason on its Job and nothing here.
    """

    as_of = models.DateField(help_text="Data up to and including this day was used.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.SUCCEEDED)
    # k bounds, minimum size, seed, sensitive attributes, engine options
    params = models.JSONField(default=dict, blank=True)
    chosen_k = models.PositiveSmallIntegerField(null=True, blank=True)
    # silhouette per k, sizes, candidates, warnings
    quality = models.JSONField(default=dict, blank=True)
    feature_columns = models.JSONField(default=list, blank=True)
    excluded_columns = models.JSONField(
        default=dict, blank=True, help_text="Column → why it was left out of the model."
    )
    # {"explained": [...], "points": [[x, y, segment_id], ...]} on a sample
    projection = models.JSONField(default=dict, blank=True)
    # per-segment figures at the time of the run: {segment_id: {"size", "revenue_share", ...}}
    summary = models.JSONField(default=dict, blank=True)
    n_customers = models.PositiveIntegerField(default=0)
    n_without_orders = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    is_live = models.BooleanField(default=False)
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "-created_at"], name="segrun_org_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_live=True), name="segrun_one_live_per_org"
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Segmentation run #{self.pk} as of {self.as_of}"


class SegmentKind(models.TextChoices):
    CLUSTER = "cluster", "Found by machine learning"
    RFM = "rfm", "RFM group"
    RULE = "rule", "Rule"


class Segment(TenantModel):
    kind = models.CharField(max_length=10, choices=SegmentKind.choices)
    name = models.CharField(max_length=120)
    # stable per organisation: "cluster-3", "rfm-champions", "rule-12"
    key = models.SlugField(max_length=80)
    description = models.TextField(blank=True)
    size = models.PositiveIntegerField(default=0)
    revenue_share = models.FloatField(default=0.0)
    # {"features": [{name, label, value, base, ratio, text}], "highlights": [...], ...}
    profile = models.JSONField(default=dict, blank=True)
    # {"columns": [...], "values": [...]} in the run's model space (cluster segments)
    centroid = models.JSONField(default=dict, blank=True)
    # rule segments: {"op": "and"|"or", "conditions": [...]} (see services/rules.py)
    rule = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    # drill-down: a sub-segment found by clustering the members of `parent` (one
    # level); null for top-level cluster segments, RFM groups and rules
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
        db_index=False,
    )  # fmt: skip
    first_run = models.ForeignKey(
        SegmentationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    last_run = models.ForeignKey(
        SegmentationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="segment_org_key_unique")
        ]
        indexes = [
            models.Index(fields=["organization", "kind", "is_active"], name="segment_org_kind"),
            models.Index(fields=["organization", "parent"], name="segment_org_parent"),
        ]
        ordering = ["kind", "-size", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def persona(self):
        """The segment's persona or None (uses a prefetch of `personas` when present)."""
        found = list(self.personas.all())
        return found[0] if found else None


class SegmentMembership(TenantModel):
    """Customer `customer` was in `segment` according to `run` (the history)."""

    # No database-level foreign keys (issue 15; as the recommendation rows): a run of
    # a million customers writes three million rows, and PostgreSQL checked four
    # constraints on each at commit: 30.6 s of the 44.7 s the rows took to write
    # (EXPLAIN ANALYZE, docs/performance.md). Row-level security binds each row to
    # the organisation in scope; deletions still cascade through Django's on_delete
    # and the erasure handler; a run's rows only name the segments it wrote and
    # customers it read in the same step.
    organization = organization_field(db_index=False, db_constraint=False)

    run = models.ForeignKey(
        SegmentationRun,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_constraint=False,
    )
    segment = models.ForeignKey(
        Segment,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_constraint=False,
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "segment", "customer"],
                name="segmember_org_run_seg_cust",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "customer", "run"], name="segmember_org_cust_run"),
            models.Index(fields=["organization", "segment", "run"], name="segmember_org_seg_run"),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} in segment {self.segment_id} (run {self.run_id})"


class Persona(TenantModel):
    """A portrait of a segment, written from its profile; people may edit any field.

    Fields named in `human_edited_fields` were written by a person and are never
    overwritten by a run; `generated` keeps the latest machine text of every field
    so a person can go back to it.
    """

    EDITABLE_FIELDS = (
        "name",
        "summary",
        "traits",
        "motivations",
        "preferred_channel",
        "preferred_time",
        "favourite_categories",
        "favourite_products",
        "value",
        "risk",
        "actions",
    )
    LIST_FIELDS = ("traits", "motivations", "favourite_categories", "favourite_products", "actions")

    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="personas", db_index=False
    )
    name = models.CharField(max_length=120)
    summary = models.TextField(blank=True, help_text="A one-paragraph portrait.")
    traits = models.JSONField(default=list, blank=True)
    motivations = models.JSONField(default=list, blank=True)
    preferred_channel = models.CharField(max_length=120, blank=True)
    preferred_time = models.CharField(max_length=120, blank=True)
    favourite_categories = models.JSONField(default=list, blank=True)
    favourite_products = models.JSONField(default=list, blank=True)
    value = models.TextField(blank=True)
    value_level = models.CharField(max_length=10, blank=True)  # high | medium | low
    risk = models.TextField(blank=True)
    risk_level = models.CharField(max_length=10, blank=True)  # high | medium | low
    actions = models.JSONField(default=list, blank=True)
    human_edited_fields = models.JSONField(default=list, blank=True)
    generated = models.JSONField(default=dict, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            # one persona per segment; a OneToOneField would add a unique index on
            # segment alone, and indexes here lead with the organisation
            models.UniqueConstraint(fields=["organization", "segment"], name="persona_org_segment")
        ]
        ordering = ["segment__kind", "-segment__size", "id"]

    def __str__(self) -> str:
        return self.name

    def is_edited(self, field: str) -> bool:
        return field in (self.human_edited_fields or [])
