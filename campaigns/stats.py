"""A campaign's results (CONTRACT.md `GET campaigns/{id}/stats/`) and the statistics
behind them.

About the statistics:
- each variant's conversion rate comes with a 95% Wilson score interval;
- a winner is named only with a fixed horizon: every arm compared has reached the
  per-variant sample size shown before sending (the campaign's `plan`), and a
  two-sided two-proportion z-test (pooled variance) of the best arm against the
  runner-up gives p < 0.05. Looking earlier cannot name a winner, so peeking does
  not inflate false winners;
- the bandit (allocation "thompson") draws, for each customer of a batch, a rate per
  arm from Beta(1 + successes, 1 + failures) and sends the arm with the highest draw;
- the hold-out's conversion rate is the share of hold-out members who ordered in the
  conversion window after the send started, from the orders themselves;
  incremental revenue = (order revenue per recipient - per hold-out member) x
  recipients, both over the same window.

The functions at the top take numbers and return numbers (no ORM); `campaign_stats`
loads and counts.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal
from statistics import NormalDist
from typing import Any

Z95 = NormalDist().inv_cdf(0.975)


# --- numbers in, numbers out ------------------------------------------------------------
def wilson_interval(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ((0, 0) when n is 0)."""
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for H0: p1 == p2, pooled variance; (0, 1) when undefined."""
    if n1 <= 0 or n2 <= 0:
        return (0.0, 1.0)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / se
    return (z, 2 * (1 - NormalDist().cdf(abs(z))))


def pick_winner(
    arms: list[tuple[Any, int, int]], *, per_variant: int, alpha: float = 0.05
) -> tuple[Any | None, float | None]:
    """arms: (id, conversions, sent). The best arm's id when every arm has reached
    `per_variant` and the best differs from the runner-up at `alpha`; and the p-value
    (None while the sample size is not reached)."""
    if len(arms) < 2 or any(n < max(per_variant, 1) for _, _, n in arms):
        return None, None
    ranked = sorted(arms, key=lambda a: a[1] / a[2], reverse=True)
    (best, x1, n1), (_, x2, n2) = ranked[0], ranked[1]
    _, p = two_proportion_z_test(x1, n1, x2, n2)
    return (best if p < alpha else None), p


def thompson_assign(
    successes: list[int], failures: list[int], n: int, *, seed: int | None = None
) -> list[int]:
    """For each of n customers, the index of the arm with the highest draw from
    Beta(1 + successes, 1 + failures)."""
    rng = random.Random(seed)
    picks = []
    for _ in range(n):
        draws = [
            rng.betavariate(1 + s, 1 + max(f, 0)) for s, f in zip(successes, failures, strict=True)
        ]
        picks.append(max(range(len(draws)), key=draws.__getitem__))
    return picks


def _rate(x: int, n: int) -> float:
    return round(x / n, 6) if n else 0.0


# --- a campaign's figures ---------------------------------------------------------------
def _group_figures(rows: list[dict]) -> dict[str, Any]:
    sent = sum(1 for r in rows if r["status"] in ("sent", "bounced"))
    converted = sum(1 for r in rows if r["converted_at"] is not None)
    revenue = sum((r["revenue"] or Decimal(0) for r in rows), Decimal(0))
    return {
        "sent": sent,
        "opened": sum(1 for r in rows if r["opened_at"] is not None),
        "clicked": sum(1 for r in rows if r["clicked_at"] is not None),
        "converted": converted,
        "revenue": float(revenue),
        "conversion_rate": _rate(converted, sent),
    }


def _window_orders(customer_ids: list[int], start, end) -> tuple[set[int], Decimal]:
    """Who of these customers ordered in [start, end), and the revenue of those orders."""
    from customers.models import Order

    buyers: set[int] = set()
    revenue = Decimal(0)
    for start_at in range(0, len(customer_ids), 5000):
        chunk = customer_ids[start_at : start_at + 5000]
        for customer_id, total in Order.objects.filter(
            customer_id__in=chunk, ordered_at__gte=start, ordered_at__lt=end, is_return=False
        ).values_list("customer_id", "total"):
            buyers.add(customer_id)
            revenue += total or Decimal(0)
    return buyers, revenue


def delivery_rows(deliveries) -> list[dict[str, Any]]:
    """The fields of a queryset of deliveries that the results are counted from."""
    return list(
        deliveries.values(
            "customer_id", "variant_id", "status", "skip_reason", "segment_id", "persona_id",
            "sent_at", "opened_at", "clicked_at", "converted_at", "revenue", "unsubscribed_at",
        )
    )  # fmt: skip


def delivery_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What happened to these deliveries: the figures a campaign's and an automation's
    results share (audience, sent, delivered, skipped by reason, opened, ...)."""
    from .models import DeliveryStatus, SkipReason

    overall = _group_figures(rows)
    sent = overall["sent"]
    bounced = sum(1 for r in rows if r["status"] == DeliveryStatus.BOUNCED)

    def skipped(reason: str) -> int:
        return sum(1 for r in rows if r["skip_reason"] == reason)

    return {
        "audience": len(rows),
        "sent": sent,
        "delivered": sent - bounced,
        "bounced": bounced,
        "skipped_no_consent": skipped(SkipReason.NO_CONSENT),
        "skipped_no_address": skipped(SkipReason.NO_ADDRESS),
        "skipped_frequency_cap": skipped(SkipReason.FREQUENCY_CAP),
        "skipped_suppressed": skipped(SkipReason.SUPPRESSED),
        "skipped_offer_holdout": skipped(SkipReason.OFFER_HOLDOUT),
        "skipped_no_offer_code": skipped(SkipReason.NO_OFFER_CODE),
        "waiting": sum(1 for r in rows if r["status"] == DeliveryStatus.QUEUED),
        "failed": sum(1 for r in rows if r["status"] == DeliveryStatus.FAILED),
        "opened": overall["opened"],
        "clicked": overall["clicked"],
        "converted": overall["converted"],
        "revenue": overall["revenue"],
        "revenue_per_recipient": round(overall["revenue"] / sent, 2) if sent else 0.0,
        "conversion_rate": overall["conversion_rate"],
        "unsubscribed": sum(1 for r in rows if r["unsubscribed_at"] is not None),
    }


def campaign_stats(campaign) -> dict[str, Any]:
    from django.utils import timezone

    from segmentation.models import Persona, Segment

    from .models import Delivery, DeliveryStatus, Variant
    from .services import campaign_plan

    rows = delivery_rows(Delivery.objects.filter(campaign=campaign))
    holdout_ids = [r["customer_id"] for r in rows if r["status"] == DeliveryStatus.HOLDOUT]
    recipient_ids = [r["customer_id"] for r in rows if r["status"] in ("sent", "bounced")]
    start = campaign.started_at or min((r["sent_at"] for r in rows if r["sent_at"]), default=None)
    holdout_rate = None
    incremental = None
    if start is not None and holdout_ids:
        end = min(start + timedelta(days=campaign.conversion_window_days), timezone.now())
        held_buyers, held_revenue = _window_orders(holdout_ids, start, end)
        _, recipients_revenue = _window_orders(recipient_ids, start, end)
        holdout_rate = _rate(len(held_buyers), len(holdout_ids))
        if recipient_ids:
            per_recipient = recipients_revenue / len(recipient_ids)
            per_held = held_revenue / len(holdout_ids)
            incremental = round(float((per_recipient - per_held) * len(recipient_ids)), 2)
    plan = campaign.plan or campaign_plan(campaign)
    variants = []
    names = dict(Variant.objects.filter(campaign=campaign).values_list("pk", "name"))
    arm_ids = set(
        Variant.objects.filter(campaign=campaign, persona__isnull=True, segment_ids=[]).values_list(
            "pk", flat=True
        )
    )
    for variant_id, name in names.items():
        figures = _group_figures([r for r in rows if r["variant_id"] == variant_id])
        lo, hi = wilson_interval(figures["converted"], figures["sent"])
        variants.append(
            {"id": variant_id, "name": name, **figures, "interval": [round(lo, 6), round(hi, 6)]}
        )
    compared = [v for v in variants if v["id"] in arm_ids] if len(arm_ids) >= 2 else variants
    winner, p_value = pick_winner(
        [(v["id"], v["converted"], v["sent"]) for v in compared],
        per_variant=int(plan.get("per_variant") or 0),
    )
    by_segment = _breakdown(rows, "segment_id", Segment, "segment_id")
    by_persona = _breakdown(rows, "persona_id", Persona, "persona_id")
    by_store = _by_store(campaign.organization, rows)
    return {
        **delivery_counts(rows),
        "holdout": len(holdout_ids),
        "holdout_conversion_rate": holdout_rate,
        "incremental_revenue": incremental,
        "variants": variants,
        "by_segment": by_segment,
        "by_persona": by_persona,
        "by_store": by_store,
        "winner": winner,
        "winner_p_value": None if p_value is None else round(p_value, 6),
        "plan": plan,
    }


def _breakdown(rows: list[dict], key: str, model, out_key: str) -> list[dict[str, Any]]:
    ids = sorted({r[key] for r in rows if r[key] is not None})
    names = dict(model.objects.filter(pk__in=ids).values_list("pk", "name"))
    out = []
    for group_id in ids:
        group = [r for r in rows if r[key] == group_id]
        out.append({out_key: group_id, "name": names.get(group_id, ""), **_group_figures(group)})
    return out


def store_figures(
    rows: list[dict], nearest: dict[int, int | None], names: dict[int, str]
) -> list[dict[str, Any]]:
    """Results per store of the customers sent to, each counted at their nearest store
    (`nearest`: customer id -> store id or None); stores in name order, then the
    customers who could not be placed (store_id None), when there are any."""
    groups: dict[int | None, list[dict]] = {}
    for r in rows:
        if r["status"] not in ("sent", "bounced"):
            continue
        groups.setdefault(nearest.get(r["customer_id"]), []).append(r)
    order = sorted((k for k in groups if k is not None), key=lambda k: (names.get(k, ""), k))
    if None in groups:
        order.append(None)
    out = []
    for store_id in order:
        figures = _group_figures(groups[store_id])
        out.append(
            {
                "store_id": store_id,
                "store": names.get(store_id, "") if store_id is not None else "Not placed",
                "sent": figures["sent"],
                "converted": figures["converted"],
                "revenue": figures["revenue"],
                "conversion_rate": figures["conversion_rate"],
            }
        )
    return out


def _by_store(organization, rows: list[dict]) -> list[dict[str, Any]]:
    """Results per store for local promotions (empty when the organisation has no
    stores): every customer sent to counts at their nearest store."""
    from stores.models import Store
    from stores.promotions import nearest_stores

    names = dict(Store.objects.values_list("pk", "name"))
    if not names:
        return []
    ids = sorted({r["customer_id"] for r in rows if r["status"] in ("sent", "bounced")})
    if not ids:
        return []
    nearest = nearest_stores(organization=organization, customer_ids=ids)
    return store_figures(rows, nearest, names)
