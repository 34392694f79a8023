"""Offers (issue 12): targeted discounts with codes, redemptions and a hold-out.

- `Offer`: what is given (`kind`: percent or amount off, free delivery, a product;
  `value` is the number, or the product's sku), to whom (segments or an audience,
  snapshotted when the offer is built), on what terms (minimum basket, categories,
  validity window, redemption limits) and how it is measured (a hold-out share that
  gets no code). A build job picks the recipients and the hold-out, issues the
  codes and runs the fairness check (four-fifths rule on the sensitive attributes
  held, audiences/fairness.py): a flagged offer cannot be sent in a campaign until
  someone records a reason to send it anyway (`override_*`, also in the audit log).
  `is_reward` marks the hidden offer loyalty points are exchanged for.
- `OfferRecipient`: one customer of a built offer: its unique code (blank in the
  hold-out, and for a shared code, which is `Offer.shared_code`), and the store
  nearest to them (for results per store). Personal data: erased with the person,
  in both exports.
- `OfferRedemption`: an order whose line carried the code given to that order's
  customer. Re-derived from the orders (offers/redemption.py), so a re-imported or
  deleted order changes it; `counted` is false for a use beyond the code's or the
  offer's limit, outside the window or below the terms, with the reason.
Codes are stored upper-case; matching ignores case and surrounding spaces.
Row-level security covers every table (accounts/rls.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = [
    "CodeMode",
    "Offer",
    "OfferKind",
    "OfferRecipient",
    "OfferRedemption",
    "OfferStatus",
]

MONEY = {"max_digits": 14, "decimal_places": 4}


class OfferKind(models.TextChoices):
    PERCENT = "percent", "Percentage off"
    AMOUNT = "amount", "Amount off"
    FREE_SHIPPING = "free_shipping", "Free delivery"
    PRODUCT = "product", "A free product"


class CodeMode(models.TextChoices):
    UNIQUE = "unique", "A unique code for each customer"
    SHARED = "shared", "One code for everyone"


class OfferStatus(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Offer(TenantModel):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=OfferKind.choices)
    value = models.CharField(max_length=64, blank=True)  # a number, or a sku for `product`
    segment_ids = models.JSONField(default=list, blank=True)
    audience = models.ForeignKey(
        "audiences.Audience", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    code_mode = models.CharField(max_length=8, choices=CodeMode.choices, default=CodeMode.UNIQUE)
    shared_code = models.CharField(max_length=32, blank=True)
    holdout_share = models.FloatField(default=0.1)
    max_redemptions_per_code = models.PositiveIntegerField(default=1)
    max_redemptions_total = models.PositiveIntegerField(null=True, blank=True)
    min_basket = models.DecimalField(null=True, blank=True, **MONEY)
    categories = models.JSONField(default=list, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=OfferStatus.choices, default=OfferStatus.BUILDING
    )
    message = models.CharField(max_length=500, blank=True)  # why a build failed
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    built_at = models.DateTimeField(null=True, blank=True)
    recipients_count = models.PositiveIntegerField(default=0)
    holdout_count = models.PositiveIntegerField(default=0)
    # the audiences' fairness rows for the recipients; flagged when any row fails
    fairness = models.JSONField(default=list, blank=True)
    fairness_flagged = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    override_at = models.DateTimeField(null=True, blank=True)
    is_reward = models.BooleanField(default=False)  # loyalty points are exchanged for it
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "shared_code"], name="offer_org_shared")]

    def __str__(self) -> str:
        return self.name

    @property
    def sendable(self) -> bool:
        """Built, and either fair or sent anyway with a recorded reason."""
        return self.status == OfferStatus.READY and (
            not self.fairness_flagged or bool(self.override_reason)
        )


class OfferRecipient(TenantModel):
    offer = models.ForeignKey(
        Offer, on_delete=models.CASCADE, related_name="recipients", db_index=False
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    code = models.CharField(max_length=32, blank=True)  # blank: hold-out, or the shared code
    holdout = models.BooleanField(default=False)
    store = models.ForeignKey(
        "stores.Store", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            # one row per customer of a built offer; the loyalty reward offer gives a
            # customer a new code at each exchange
            models.UniqueConstraint(
                fields=["organization", "offer", "customer", "code"], name="offerrecipient_once"
            ),
            models.UniqueConstraint(
                fields=["organization", "code"],
                condition=~models.Q(code=""),
                name="offerrecipient_code_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "customer"], name="offerrecipient_customer"),
        ]

    def __str__(self) -> str:
        return f"Customer {self.customer_id} in offer {self.offer_id}"


class OfferRedemption(TenantModel):
    offer = models.ForeignKey(
        Offer, on_delete=models.CASCADE, related_name="redemptions", db_index=False
    )
    recipient = models.ForeignKey(
        OfferRecipient, on_delete=models.CASCADE, related_name="redemptions", db_index=False
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # No database constraint: an order deleted by a person goes by raw SQL
    # (customers.services.orders.order_delete), which the ORM's cascade never sees;
    # the `offers` step that follows drops the redemption and its event.
    order = models.ForeignKey(
        "customers.Order", on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    code = models.CharField(max_length=32)
    revenue = models.DecimalField(default=0, **MONEY)  # the order's net amount
    discount = models.DecimalField(default=0, **MONEY)
    redeemed_at = models.DateTimeField()
    counted = models.BooleanField(default=True)
    reason = models.CharField(max_length=200, blank=True)  # why a use does not count

    class Meta(TenantModel.Meta):
        ordering = ["redeemed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "offer", "order"], name="offerredemption_once"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "offer", "redeemed_at"], name="offerred_offer"),
            models.Index(fields=["organization", "customer"], name="offerred_customer"),
        ]

    def __str__(self) -> str:
        return f"Offer {self.offer_id} redeemed on order {self.order_id}"
