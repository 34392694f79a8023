"""Recommendation runs and what they recommend (issue 10).

A `RecommendationRun` is one pass of the recommendations step for an organisation
up to a cut-off: every candidate's hold-out evaluation, the kind served, whether
items bought before are recommended again, and the popular products used for
cold starts (overall, per segment, per category). Exactly one run per
organisation is live (`is_live`); a new run replaces it in one transaction.

`CustomerRecommendation` holds one customer's recommended products (personal
data: erased with the person, in both exports); `ProductRelation` a product's
"bought together" products. Older runs keep their evaluation while their rows are
pruned. Row-level security covers every table here (accounts/rls.py applies it to
every TenantModel table after migrate).

`RecommendationSettings` holds what the owner decides (one row per organisation):
whether products bought before are recommended again — as the hold-out says
(`auto`), `always` or `never`. It is read when a run serves, so a change shows
from the next run.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import TenantModel, organization_field

__all__ = [
    "CustomerRecommendation",
    "ProductRelation",
    "RecommendationRun",
    "RecommendationSettings",
    "Repeats",
]


class Repeats(models.TextChoices):
    AUTO = "auto", "As the test on past purchases says"
    ALWAYS = "always", "Always"
    NEVER = "never", "Never"


class RecommendationSettings(TenantModel):
    """What the owner decides about recommendations (one row per organisation)."""

    repeats = models.CharField(
        max_length=8,
        choices=Repeats.choices,
        default=Repeats.AUTO,
        help_text="Recommend products a customer bought before: auto (as the hold-out "
        "says), always or never. Used from the next run.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="recsettings_org_unique"),
            models.CheckConstraint(
                condition=Q(repeats__in=["auto", "always", "never"]), name="recsettings_repeats"
            ),
        ]
        verbose_name_plural = "recommendation settings"

    def __str__(self) -> str:
        return f"Recommendation settings (repeats: {self.repeats})"


class RecommendationRun(TenantModel):
    cutoff = models.DateField(help_text="Purchases up to and including this day (UTC) were used.")
    trained_at = models.DateTimeField(default=timezone.now)
    served = models.CharField(max_length=32)  # a kind of recommendations.ml.KINDS
    repeats = models.BooleanField(
        default=True, help_text="Products a customer bought before may be recommended again."
    )
    # the owner's setting in force when the run served ("auto": the hold-out decided)
    repeats_setting = models.CharField(max_length=8, default="auto")
    # [{"kind", "precision_at_10", "recall_at_10", "map_at_10", "coverage", "customers",
    #   "repeats"}], popularity always among them
    evaluation = models.JSONField(default=list, blank=True)
    # {"overall": [product ids], "segments": {segment id: [...]}, "segment_names": {...},
    #  "categories": {category: [...]}}
    popular = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(default=list, blank=True)  # sentences (e.g. ALS not installed)
    timings = models.JSONField(default=dict, blank=True)
    n_customers = models.PositiveIntegerField(default=0)
    n_products = models.PositiveIntegerField(default=0)
    is_live = models.BooleanField(default=False)
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "-trained_at"], name="recrun_org_trained")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_live=True), name="recrun_one_live_per_org"
            )
        ]
        ordering = ["-trained_at", "-id"]

    def __str__(self) -> str:
        return f"Recommendations up to {self.cutoff:%Y-%m-%d} ({self.served})"

    def entry(self, kind: str) -> dict | None:
        return next((e for e in self.evaluation if e.get("kind") == kind), None)


class CustomerRecommendation(TenantModel):
    """One recommended product for one customer in one run (rank 1 = best)."""

    # No database-level foreign keys (issue 15): a big shop's run writes ten million
    # rows, and PostgreSQL checked three constraints per row at commit (longer than
    # writing them). Deletions still cascade (Django's on_delete, the erasure handler,
    # the organisation's removal); a run's rows only name customers and products
    # read from the database in the same step.
    organization = organization_field(db_index=False, db_constraint=False)  # indexes lead with it
    run = models.ForeignKey(
        RecommendationRun,
        on_delete=models.CASCADE,
        related_name="customer_rows",
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
    product = models.ForeignKey(
        "customers.Product", on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    reason = models.CharField(max_length=200)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "customer", "rank"], name="custrec_org_run_cust_rank"
            )
        ]
        # No (organisation, customer) index: every read names the run (the live one,
        # or each of the few kept runs for an erasure), which the unique key serves;
        # a run writes ten million rows a big shop, and each index is one more
        # insert for every one of them.

    def __str__(self) -> str:
        return f"Recommendation {self.rank} for customer {self.customer_id}"


class ProductRelation(TenantModel):
    """A product bought together with another, in one run (rank 1 = most)."""

    run = models.ForeignKey(
        RecommendationRun, on_delete=models.CASCADE, related_name="product_rows", db_index=False
    )
    product = models.ForeignKey(
        "customers.Product", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    related = models.ForeignKey(
        "customers.Product", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    buyers = models.PositiveIntegerField(default=0)  # customers who bought both

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "product", "rank"], name="prodrel_org_run_prod_rank"
            )
        ]

    def __str__(self) -> str:
        return f"{self.related_id} bought with {self.product_id}"
