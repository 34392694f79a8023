"""`build_world` for the tenant isolation sweep: one of each loyalty tenant model
(a programme with a tier, a customer's account, a tier change, points exchanged)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    from customers.models import Customer
    from loyalty.models import (
        LoyaltyAccount,
        LoyaltyProgram,
        LoyaltyTier,
        PointsRedemption,
        TierChange,
    )

    with tenant_context(organization):
        customer = Customer.objects.order_by("pk").first() or Customer.objects.create(
            organization=organization, external_id="loy-world-1", email="loyalty@example.com"
        )
        program = LoyaltyProgram.objects.first() or LoyaltyProgram.objects.create(
            organization=organization, metric="spend", period_days=365, reward_points=100
        )
        tier, _ = LoyaltyTier.objects.get_or_create(
            organization=organization,
            program=program,
            name="Gold",
            defaults={"threshold": Decimal(100), "position": 0},
        )
        LoyaltyAccount.objects.get_or_create(
            organization=organization,
            customer=customer,
            defaults={
                "tier": tier,
                "metric_value": Decimal(150),
                "points_earned": 350,
                "points_redeemed": 100,
                "points": 250,
                "tier_since": dt.date(2026, 1, 1),
            },
        )
        TierChange.objects.create(
            organization=organization,
            customer=customer,
            from_tier="",
            to_tier="Gold",
            up=True,
            changed_on=dt.date(2026, 1, 1),
        )
        PointsRedemption.objects.create(
            organization=organization,
            customer=customer,
            points=100,
            value=Decimal(5),
            code="WORLDLOYALTY1",
        )
