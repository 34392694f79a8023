"""Reading loyalty: a customer's standing, tiers for lists and merge fields, and
what erasure and the exports need. Everything goes through the scoped managers."""

from __future__ import annotations

from typing import Any

from . import compute
from .models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier, PointsRedemption, TierChange


def program_live() -> LoyaltyProgram | None:
    return LoyaltyProgram.objects.first()


def tiers_of(program: LoyaltyProgram) -> list[LoyaltyTier]:
    """The programme's tiers, lowest first."""
    return list(LoyaltyTier.objects.filter(program=program).order_by("threshold", "id"))


def _number(value, metric: str) -> float | int:
    return int(value) if metric == "orders" else float(value)


def customer_loyalty(*, customer, program: LoyaltyProgram | None = None) -> dict[str, Any] | None:
    """A customer's tier, points and progress to the next tier, or None without a
    programme. A customer the programme has not placed yet (no paid order, or before
    the first computation) has no tier and 0 points. `program`: the programme when
    the caller has read it already."""
    program = program if program is not None else program_live()
    if program is None:
        return None
    tiers = tiers_of(program)
    account = LoyaltyAccount.objects.filter(customer_id=customer.pk).select_related("tier").first()
    metric = compute.scaled(account.metric_value) if account is not None else 0
    tier = account.tier if account is not None else None
    thresholds = tuple(compute.scaled(t.threshold) for t in tiers)
    step = compute.progress(metric, thresholds)
    nxt = tiers[step.next_index] if step.next_index is not None else None
    return {
        "tier": tier.name if tier is not None else None,
        "points": account.points if account is not None else 0,
        "points_earned": account.points_earned if account is not None else 0,
        "points_redeemed": account.points_redeemed if account is not None else 0,
        "next_tier": nxt.name if nxt is not None else None,
        "remaining": _number(compute.unscaled(step.remaining), program.metric)
        if nxt is not None
        else None,
        "metric": program.metric,
        "metric_value": _number(compute.unscaled(metric), program.metric),
        "progress": round(step.share, 4),
        "tier_since": account.tier_since if account is not None else None,
        "period_days": program.period_days,
        "as_of": program.as_of,
        "reward_points": program.reward_points,
        "reward_value": float(program.reward_value),
        "can_redeem": bool(
            program.active and account is not None and account.points >= program.reward_points
        ),
    }


def customer_tier_changes(*, customer, limit: int = 20) -> list[TierChange]:
    return list(
        TierChange.objects.filter(customer_id=customer.pk).order_by("-changed_on", "-id")[:limit]
    )


def customer_redemptions(*, customer, limit: int = 20) -> list[PointsRedemption]:
    return list(PointsRedemption.objects.filter(customer_id=customer.pk)[:limit])


def loyalty_for_customers(customer_ids) -> dict[int, dict]:
    """Enricher (customers.registry): {customer id: {"loyalty": {"tier", "points"}}}
    for the customers with an account (one query); nothing without a programme."""
    ids = list(customer_ids)
    if not ids or not LoyaltyProgram.objects.exists():
        return {}
    rows = LoyaltyAccount.objects.filter(customer_id__in=ids).values_list(
        "customer_id", "tier__name", "points"
    )
    return {cid: {"loyalty": {"tier": tier, "points": points}} for cid, tier, points in rows}


def tiers_for(*, customer_ids) -> dict[int, str]:
    """{customer id: tier name} for the customers who hold a tier (the campaigns'
    `loyalty_tier` merge field; a customer without one is left out)."""
    ids = list(customer_ids)
    if not ids:
        return {}
    rows = LoyaltyAccount.objects.filter(customer_id__in=ids, tier__isnull=False).values_list(
        "customer_id", "tier__name"
    )
    return dict(rows)


def tier_counts() -> list[dict[str, Any]]:
    """Members per tier, lowest first (the page and the API's programme)."""
    from django.db.models import Count

    program = program_live()
    if program is None:
        return []
    counts = dict(
        LoyaltyAccount.objects.filter(tier__isnull=False)
        .values("tier_id")
        .annotate(n=Count("id"))
        .values_list("tier_id", "n")
    )
    return [
        {"id": t.pk, "name": t.name, "threshold": t.threshold, "members": counts.get(t.pk, 0)}
        for t in tiers_of(program)
    ]


# --- privacy -----------------------------------------------------------------------------
def erase_customers(*, organization, customer_ids) -> None:
    """An erased person's loyalty account, tier changes and points exchanged are
    deleted (their `tier_changed` events go with their other events)."""
    ids = list(customer_ids)
    LoyaltyAccount.objects.filter(customer_id__in=ids).delete()
    TierChange.objects.filter(customer_id__in=ids).delete()
    PointsRedemption.objects.filter(customer_id__in=ids).delete()


def person_export(*, customer) -> dict:
    """Everything loyalty holds on one person, for their export."""
    account = LoyaltyAccount.objects.filter(customer_id=customer.pk).select_related("tier").first()
    return {
        "loyalty": {
            "account": None
            if account is None
            else {
                "tier": account.tier.name if account.tier else None,
                "tier_since": account.tier_since.isoformat() if account.tier_since else None,
                "metric_value": str(account.metric_value),
                "points_earned": account.points_earned,
                "points_redeemed": account.points_redeemed,
                "points": account.points,
                "updated_at": account.updated_at.isoformat(),
            },
            "tier_changes": [
                {
                    "from": c.from_tier,
                    "to": c.to_tier,
                    "up": c.up,
                    "changed_on": c.changed_on.isoformat(),
                }
                for c in TierChange.objects.filter(customer_id=customer.pk).order_by(
                    "changed_on", "id"
                )
            ],
            "points_exchanged": [
                {
                    "points": r.points,
                    "value": str(r.value),
                    "code": r.code,
                    "created_at": r.created_at.isoformat(),
                }
                for r in PointsRedemption.objects.filter(customer_id=customer.pk).order_by(
                    "created_at", "id"
                )
            ],
        }
    }


def org_export() -> list[tuple[str, list[str], object]]:
    """Accounts, tier changes and points exchanged, for the organisation's zip
    (erased people are left out: erasure deletes their rows)."""
    alive = {"customer__erased_at__isnull": True}
    accounts = (
        LoyaltyAccount.objects.filter(**alive)
        .order_by("customer_id")
        .values_list(
            "customer__external_id",
            "tier__name",
            "tier_since",
            "metric_value",
            "points_earned",
            "points_redeemed",
            "points",
            "updated_at",
        )  # fmt: skip
        .iterator(chunk_size=2000)
    )
    changes = (
        TierChange.objects.filter(**alive)
        .order_by("changed_on", "id")
        .values_list("customer__external_id", "from_tier", "to_tier", "up", "changed_on")
        .iterator(chunk_size=2000)
    )
    exchanged = (
        PointsRedemption.objects.filter(**alive)
        .order_by("created_at", "id")
        .values_list("customer__external_id", "points", "value", "code", "created_at")
        .iterator(chunk_size=2000)
    )
    return [
        (
            "loyalty_accounts.csv",
            [
                "customer_id",
                "tier",
                "tier_since",
                "metric_value",
                "points_earned",
                "points_redeemed",
                "points",
                "updated_at",
            ],  # fmt: skip
            accounts,
        ),
        (
            "loyalty_tier_changes.csv",
            ["customer_id", "from_tier", "to_tier", "up", "changed_on"],
            changes,
        ),
        (
            "loyalty_points_exchanged.csv",
            ["customer_id", "points", "value", "code", "created_at"],
            exchanged,
        ),
    ]
