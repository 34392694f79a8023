"""Loyalty (issue 12): tiers from order count or spend over a rolling period, and
points for every unit of currency spent.

- `LoyaltyProgram`: one per organisation (CONTRACT.md `loyalty/program/`): the
  metric (`orders` or `spend`), the rolling period in days (ending on the
  organisation's latest data date, counted in its time zone), points per unit of
  currency, and what points buy (`reward_points` points for `reward_value` off, as
  an offer code).
- `LoyaltyTier`: a named tier reached at `threshold` (orders, or spend in the
  organisation's currency); the lowest tier may start at 0.
- `LoyaltyAccount`: one customer's tier, the metric it was placed by, points
  (earned on net spend, returns taking them back, minus points exchanged), and the
  next tier with what remains to reach it. Recomputed by the `loyalty` step (after
  each import and nightly).
- `TierChange`: a customer moving between tiers (written with a `tier_changed`
  event, which automations use).
- `PointsRedemption`: points exchanged for an offer code.
Personal data in accounts, changes and redemptions: erased with the person, in
both exports. Row-level security covers every table (accounts/rls.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = [
    "LoyaltyAccount",
    "LoyaltyMetric",
    "LoyaltyProgram",
    "LoyaltyTier",
    "PointsRedemption",
    "TierChange",
]

MONEY = {"max_digits": 14, "decimal_places": 4}


class LoyaltyMetric(models.TextChoices):
    ORDERS = "orders", "Number of orders"
    SPEND = "spend", "Amount spent"


class LoyaltyProgram(TenantModel):
    metric = models.CharField(
        max_length=8, choices=LoyaltyMetric.choices, default=LoyaltyMetric.SPEND
    )
    period_days = models.PositiveIntegerField(default=365)
    points_per_unit = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    reward_points = models.PositiveIntegerField(default=500)
    reward_value = models.DecimalField(default=5, **MONEY)
    active = models.BooleanField(default=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    as_of = models.DateField(null=True, blank=True)  # the last computation's cut-off
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="loyaltyprogram_one_per_org")
        ]

    def __str__(self) -> str:
        return f"Loyalty programme of organisation {self.organization_id}"


class LoyaltyTier(TenantModel):
    program = models.ForeignKey(
        LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers", db_index=False
    )
    name = models.CharField(max_length=60)
    threshold = models.DecimalField(default=0, **MONEY)
    position = models.PositiveSmallIntegerField(default=0)  # 0 = lowest

    class Meta(TenantModel.Meta):
        ordering = ["position", "threshold", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "program", "name"], name="loyaltytier_name_once"
            )
        ]

    def __str__(self) -> str:
        return self.name


class LoyaltyAccount(TenantModel):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    tier = models.ForeignKey(
        LoyaltyTier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    metric_value = models.DecimalField(default=0, **MONEY)  # orders or spend in the period
    points_earned = models.IntegerField(default=0)  # net of returns
    points_redeemed = models.IntegerField(default=0)
    points = models.IntegerField(default=0)  # earned - redeemed
    tier_since = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "customer"], name="loyaltyaccount_once")
        ]
        indexes = [models.Index(fields=["organization", "tier"], name="loyaltyaccount_tier")]

    def __str__(self) -> str:
        return f"Loyalty of customer {self.customer_id}"


class TierChange(TenantModel):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    from_tier = models.CharField(max_length=60, blank=True)  # blank: no tier
    to_tier = models.CharField(max_length=60, blank=True)
    up = models.BooleanField(default=True)
    changed_on = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["changed_on", "id"]
        indexes = [
            models.Index(fields=["organization", "changed_on"], name="tierchange_org_day"),
            models.Index(fields=["organization", "customer"], name="tierchange_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.from_tier or 'none'} → {self.to_tier or 'none'}"


class PointsRedemption(TenantModel):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    points = models.PositiveIntegerField()
    value = models.DecimalField(**MONEY)
    code = models.CharField(max_length=32)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "customer"], name="pointsred_customer")]

    def __str__(self) -> str:
        return f"{self.points} points of customer {self.customer_id}"
