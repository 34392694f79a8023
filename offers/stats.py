"""An offer's results (CONTRACT.md `GET offers/{id}/stats/`) and the statistics
behind them.

Definitions:
- **window**: from `starts_at` (or, when the offer has none, when it was built) to
  `ends_at` (or, when it has none or it is still ahead, the organisation's latest
  data date: the newest order or event);
- **recipients** got a code; the **hold-out** was kept back at random and got none;
- **redeemed**: counted redemptions (offers/redemption.py says which uses count);
- **revenue**: the revenue of the orders of counted redemptions, as the
  organisation counts revenue (`revenue_basis`), net of returns on those orders;
- **discount_given**: the discounts of counted redemptions (the orders'
  `discount_amount`, else worked out from the offer's terms);
- **conversion_rate**: the share of recipients who placed at least one paid order
  (not a return) in the window, with or without the code;
  **holdout_conversion_rate** the same share for the hold-out;
- **incremental_revenue** = (revenue per recipient − revenue per hold-out member)
  × recipients, counting *all* paid orders of each group in the window (returns
  taking revenue back), so it measures what the offer added, not only what was
  bought with the code;
- **interval**: the 95% interval of the incremental revenue, normal approximation
  with each group's own variance: (d ± 1.96 √(s₁²/n₁ + s₀²/n₀)) × n₁, where d is
  the difference of the means. Null when a group is empty (or the hold-out has a
  single member, whose variance is unknown);
- **revenue_per_recipient**, **holdout_revenue_per_member**: each group's revenue
  per person in the window, as the incremental revenue counts it;
- **sample_note**: a sentence when the hold-out is too small to say much.

`incremental_interval` takes numbers and returns numbers (no ORM); `offer_stats`
loads and counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from statistics import NormalDist
from typing import Any

Z95 = NormalDist().inv_cdf(0.975)
MIN_HOLDOUT = 30  # fewer hold-out members: the comparison is mostly chance
NOT_PLACED = "Not placed"

__all__ = ["incremental_interval", "offer_stats", "offer_window"]


def _mean_var(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    if n == 0:
        return 0.0, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1)


def _mean_revenue(revenue: dict, members: list[int]) -> float | None:
    """Revenue per member of a group in the window (null for an empty group)."""
    if not members:
        return None
    return round(sum(float(revenue.get(c, 0)) for c in members) / len(members), 2)


def incremental_interval(
    treated: list[float], held: list[float], *, z: float = Z95
) -> tuple[float | None, list[float] | None]:
    """(incremental revenue, [lo, hi]) from each member's revenue in the two groups:
    (mean treated − mean held) × n treated, and its normal-approximation interval.
    (None, None) when a group is empty; the interval is None when a variance is
    unknown (a group of one)."""
    if not treated or not held:
        return None, None
    n1 = len(treated)
    m1, v1 = _mean_var(treated)
    m0, v0 = _mean_var(held)
    effect = (m1 - m0) * n1
    if v1 is None or v0 is None:
        return round(effect, 2), None
    se = math.sqrt(v1 / n1 + v0 / len(held))
    return round(effect, 2), [round((m1 - m0 - z * se) * n1, 2), round((m1 - m0 + z * se) * n1, 2)]


def offer_window(offer) -> dict[str, Any]:
    """{"start", "end"} of the offer's results (datetimes or None): an end still
    ahead is cut at the latest data date."""
    from customers.selectors import latest_data_date

    start = offer.starts_at or offer.built_at
    latest = latest_data_date()
    ends = [t for t in (offer.ends_at, latest) if t is not None]
    return {"start": start, "end": min(ends) if ends else None}


def _revenue_by_customer(customer_ids: list[int], start, end, *, organization):
    """{customer id: net revenue of their paid orders in [start, end]} and the set of
    those with a paid purchase (not a return) in it."""
    from customers.models import Order, OrderStatus
    from customers.selectors import order_revenue

    revenue: dict[int, Decimal] = defaultdict(Decimal)
    buyers: set[int] = set()
    if start is None or end is None or end < start:
        return revenue, buyers
    expression = order_revenue(organization.revenue_basis or "goods")
    for i in range(0, len(customer_ids), 5000):
        chunk = customer_ids[i : i + 5000]
        rows = (
            Order.objects.filter(
                customer_id__in=chunk,
                status=OrderStatus.PAID,
                ordered_at__gte=start,
                ordered_at__lte=end,
            )
            .annotate(counted=expression)
            .values_list("customer_id", "counted", "is_return")
        )
        for customer_id, counted, is_return in rows:
            revenue[customer_id] += counted or Decimal(0)
            if not is_return:
                buyers.add(customer_id)
    return revenue, buyers


def _rate(x: int, n: int) -> float | None:
    return round(x / n, 6) if n else None


def _sample_note(recipients: int, holdout: int) -> str:
    if holdout == 0:
        return (
            "Nobody was kept back, so there is no way to tell what the offer added: "
            "keep a hold-out next time."
        )
    if recipients == 0:
        return "Nobody got a code yet."
    if holdout < MIN_HOLDOUT:
        return (
            f"Only {holdout:,} customers were kept back: too few to say what the offer "
            "added — treat the incremental revenue as a rough guide."
        )
    return ""


def offer_stats(offer) -> dict[str, Any]:
    from django.db.models import Count, Sum

    from stores.models import Store

    from .models import OfferRecipient, OfferRedemption

    organization = offer.organization
    members = list(
        OfferRecipient.objects.filter(offer=offer, customer__erased_at__isnull=True).values_list(
            "customer_id", "holdout", "store_id"
        )
    )
    treated = sorted({cid for cid, held, _ in members if not held})
    held = sorted({cid for cid, h, _ in members if h} - set(treated))
    window = offer_window(offer)
    start, end = window["start"], window["end"]
    revenue, buyers = _revenue_by_customer(treated + held, start, end, organization=organization)
    counted = OfferRedemption.objects.filter(offer=offer, counted=True)
    totals = counted.aggregate(n=Count("pk"), revenue=Sum("revenue"), discount=Sum("discount"))
    incremental, interval = incremental_interval(
        [float(revenue.get(c, 0)) for c in treated], [float(revenue.get(c, 0)) for c in held]
    )

    # by store: the recipients' nearest store (no store: "Not placed")
    store_of = {cid: store for cid, h, store in members if not h}
    per_store: dict[int | None, dict[str, Any]] = {}
    for cid in treated:
        row = per_store.setdefault(
            store_of.get(cid), {"recipients": 0, "buyers": 0, "redeemed": 0, "revenue": Decimal(0)}
        )
        row["recipients"] += 1
        row["buyers"] += cid in buyers
    redeemed_rows = counted.values("recipient__store_id").annotate(
        n=Count("pk"), revenue=Sum("revenue")
    )
    for r in redeemed_rows:
        row = per_store.setdefault(
            r["recipient__store_id"],
            {"recipients": 0, "buyers": 0, "redeemed": 0, "revenue": Decimal(0)},
        )
        row["redeemed"] += r["n"]
        row["revenue"] += r["revenue"] or Decimal(0)
    names = dict(
        Store.objects.filter(pk__in=[k for k in per_store if k is not None]).values_list(
            "pk", "name"
        )
    )
    by_store = [
        {
            "store_id": store_id,
            "store": names.get(store_id, "") if store_id is not None else NOT_PLACED,
            "recipients": row["recipients"],
            "redeemed": row["redeemed"],
            "revenue": round(float(row["revenue"]), 2),
            "conversion_rate": _rate(row["buyers"], row["recipients"]),
        }
        for store_id, row in sorted(
            per_store.items(), key=lambda kv: (kv[0] is None, -kv[1]["recipients"], kv[0] or 0)
        )
    ]
    return {
        "recipients": len(treated),
        "holdout": len(held),
        "redeemed": totals["n"] or 0,
        "revenue": round(float(totals["revenue"] or 0), 2),
        "discount_given": round(float(totals["discount"] or 0), 2),
        "conversion_rate": _rate(sum(1 for c in treated if c in buyers), len(treated)),
        "holdout_conversion_rate": _rate(sum(1 for c in held if c in buyers), len(held)),
        "incremental_revenue": incremental,
        "interval": interval,
        "revenue_per_recipient": _mean_revenue(revenue, treated),
        "holdout_revenue_per_member": _mean_revenue(revenue, held),
        "by_store": by_store,
        "window": {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        },
        "sample_note": _sample_note(len(treated), len(held)),
        "uses_not_counted": OfferRedemption.objects.filter(offer=offer, counted=False).count(),
    }
