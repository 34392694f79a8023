"""Offer suggestions: one ready-to-create offer per live segment, with evidence only
where earlier offers measured it (issue 12, "Offer suggestions with guardrails").

Guardrails, by construction:
- a suggestion is for a whole segment: the same offer and value for every member,
  never a price per person;
- the traits read are behaviour only — orders, spend, how recently they bought and
  the predicted chance they stop buying (`Customer.orders_count`, `total_spent`,
  `last_order_at`, `CustomerPrediction.churn_probability`); no sensitive attribute
  (core/sensitive.py, audiences/fairness.py) is read here at all.

The angle follows the segment's traits against the whole customer base, in this
order (the first that fits wins):

- `winback`: fading — at least half predicted at high risk of not ordering again,
  or their typical last order is 1.5× older than the base's and over 60 days ago;
  unless they are new and not stale (below);
- `welcome`: new — at least 60% have ordered once or never (when they also bought
  lately, this comes before the win-back: a churn model calls most one-order
  customers "at risk");
- `bundle`: big baskets — spending per order at least 1.3× the base's: an amount
  off a bigger basket;
- `early_access`: loyal regulars — at least 1.5× the base's orders per customer
  and ordering at least as recently as the base;
- `free_shipping`: everyone else.

Evidence. An earlier offer counts for a suggestion when it gave the same thing (the
same `kind` and `value`), kept a hold-out, was built and its window has ended
(`ends_at` in the past). Their recipients and hold-out members are pooled; for each
person we read the orders they placed inside their offer's window (from
`starts_at`, or when it was built, to `ends_at`; paid orders counted as the
organisation counts revenue, returns taking it back — as the offer's results page
counts them, offers/stats.py). Then:

- uplift = share who ordered among recipients − among the hold-out (points);
- incremental revenue per recipient = mean revenue per recipient − per hold-out
  member, with a 95% normal interval (Welch: each group's own variance);
- cost per recipient = the counted redemptions' discount / recipients.

`status` is "measured" only with at least `MIN_GROUP` people in each pooled group
(and so an interval); otherwise "none", and the page says to run it with a
hold-out. `supported` says whether the interval lies above zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from statistics import median
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

MIN_GROUP = 30  # people in each pooled group before a comparison is shown
Z95 = 1.959964

# thresholds against the whole customer base (see the module docstring)
FADING_HIGH_RISK_SHARE = 0.5
FADING_RECENCY_RATIO = 1.5
FADING_MIN_DAYS = 60
NEW_SHARE = 0.6
BIG_BASKET_RATIO = 1.3
FREQUENT_RATIO = 1.5

ANGLE_WORDS = {
    "winback": "Win them back",
    "welcome": "Welcome them",
    "bundle": "A bundle for big baskets",
    "early_access": "Early access for regulars",
    "free_shipping": "Free delivery",
}

__all__ = ["ANGLE_WORDS", "MIN_GROUP", "comparison", "segment_suggestions", "segment_traits"]


# --- traits ------------------------------------------------------------------------------
def _traits_of(customers: QuerySet, *, today, churn: dict[int, float]) -> dict[str, Any]:
    """Behaviour of a group of customers (erased ones left out)."""
    rows = list(
        customers.filter(erased_at__isnull=True).values_list(
            "pk", "orders_count", "total_spent", "last_order_at"
        )
    )
    n = len(rows)
    orders = sum(r[1] for r in rows)
    spent = sum((r[2] or Decimal(0)) for r in rows)
    days = [max((today - r[3]).days, 0) for r in rows if r[3] is not None]
    risks = [churn[r[0]] for r in rows if r[0] in churn]
    return {
        "customers": n,
        "avg_basket": float(spent) / orders if orders else None,
        "orders_per_customer": orders / n if n else None,
        "recency_days": float(median(days)) if days else None,
        "new_share": (sum(1 for r in rows if r[1] <= 1) / n) if n else None,
        "high_risk_share": (sum(1 for p in risks if p >= 0.5) / len(risks)) if risks else None,
        "churn_probability": (sum(risks) / len(risks)) if risks else None,
    }


def _churn_by_customer() -> dict[int, float]:
    """Each customer's predicted chance of no order in the next 90 days (live run)."""
    from predictions.models import CustomerPrediction

    return dict(
        CustomerPrediction.objects.filter(run__is_live=True).values_list(
            "customer_id", "churn_probability"
        )
    )


def _today():
    """The newest order in the data (an imported history may end before today)."""
    from customers.models import Customer

    newest = (
        Customer.objects.filter(erased_at__isnull=True, last_order_at__isnull=False)
        .order_by("-last_order_at")
        .values_list("last_order_at", flat=True)
        .first()
    )
    return newest or timezone.now()


def segment_traits(segment, *, today=None, churn=None) -> dict[str, Any]:
    from segmentation.selectors import segment_members

    today = today or _today()
    churn = _churn_by_customer() if churn is None else churn
    return _traits_of(segment_members(segment=segment), today=today, churn=churn)


# --- the angle ---------------------------------------------------------------------------
def _ratio(a, b) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _money(value: float, symbol: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".replace(".00", "")
    return f"{symbol}{text}" if symbol else text


def _round_to(value: float, step: float) -> float:
    return max(step, step * round(value / step))


def _angle(t: dict, base: dict, symbol: str) -> tuple[str, dict, str]:
    """(angle, offer, why) for a segment's traits `t` against the base's."""
    recency_ratio = _ratio(t["recency_days"], base["recency_days"])
    basket_ratio = _ratio(t["avg_basket"], base["avg_basket"])
    frequency_ratio = _ratio(t["orders_per_customer"], base["orders_per_customer"])

    high_risk = t["high_risk_share"] is not None and t["high_risk_share"] >= FADING_HIGH_RISK_SHARE
    stale = (
        recency_ratio is not None
        and recency_ratio >= FADING_RECENCY_RATIO
        and (t["recency_days"] or 0) >= FADING_MIN_DAYS
    )
    # first-time buyers who bought lately look "at risk" to a churn model (one order
    # tells it little): a welcome suits them, a win-back does not
    recent_new = t["new_share"] is not None and t["new_share"] >= NEW_SHARE and not stale
    if (high_risk or stale) and not recent_new:
        parts = []
        if t["recency_days"] is not None:
            parts.append(
                f"their last order was typically {t['recency_days']:.0f} days ago "
                f"(across all your customers: {base['recency_days']:.0f} days)"
            )
        if t["high_risk_share"] is not None:
            parts.append(
                f"{t['high_risk_share']:.0%} of them are unlikely to order in the next 90 days"
            )
        why = "They are drifting away: " + " and ".join(parts) + "."
        offer = {"kind": "percent", "value": "20", "name": "We miss you: 20% off"}
        return "winback", offer, why
    if t["new_share"] is not None and t["new_share"] >= NEW_SHARE:
        why = (
            f"{t['new_share']:.0%} of them have ordered once or not yet: a reason to come "
            "back turns a first order into a habit."
        )
        offer = {"kind": "percent", "value": "10", "name": "Welcome: 10% off your next order"}
        return "welcome", offer, why
    if basket_ratio is not None and basket_ratio >= BIG_BASKET_RATIO:
        amount = _round_to(0.1 * t["avg_basket"], 5 if t["avg_basket"] >= 50 else 1)
        why = (
            f"They spend about {_money(t['avg_basket'], symbol)} an order, "
            f"{basket_ratio:.1f}× your customers' average ({_money(base['avg_basket'], symbol)}): "
            "an amount off a bigger basket suits them better than a percentage."
        )
        value = f"{amount:g}"
        offer = {
            "kind": "amount",
            "value": value,
            "name": f"Bundle deal: {_money(amount, symbol)} off a bigger basket",
        }
        return "bundle", offer, why
    if (
        frequency_ratio is not None
        and frequency_ratio >= FREQUENT_RATIO
        and (recency_ratio is None or recency_ratio <= 1)
    ):
        why = (
            f"They are regulars: {t['orders_per_customer']:.1f} orders each "
            f"({frequency_ratio:.1f}× your customers' average), last ordering about "
            f"{t['recency_days']:.0f} days ago. Reward loyalty with first pick rather than "
            "a deep discount."
        )
        offer = {"kind": "percent", "value": "5", "name": "Early access for regulars, 5% off"}
        return "early_access", offer, why
    why = "Nothing stands out about how they buy: free delivery is a gentle nudge to order again."
    if t["avg_basket"] is not None:
        why = (
            f"They buy like most of your customers (about {_money(t['avg_basket'], symbol)} an "
            "order): free delivery is a gentle nudge to order again."
        )
    offer = {"kind": "free_shipping", "value": "", "name": "Free delivery on your next order"}
    return "free_shipping", offer, why


# --- evidence ----------------------------------------------------------------------------
def _same_value(a: str, b: str) -> bool:
    a, b = (a or "").strip(), (b or "").strip()
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return a.casefold() == b.casefold()


def _finished_offers(now) -> list:
    from .models import Offer, OfferStatus

    return list(
        Offer.objects.filter(
            is_reward=False,
            status=OfferStatus.READY,
            holdout_share__gt=0,
            ends_at__isnull=False,
            ends_at__lte=now,
        ).order_by("pk")
    )


def _mean_var(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def _window(offer) -> tuple:
    """The offer's results window, as its results page counts it (offers/stats.py):
    from `starts_at` (or when it was built) to `ends_at`, cut at the newest data."""
    from customers.selectors import latest_data_date

    start = offer.starts_at or offer.built_at or offer.created_at
    ends = [t for t in (offer.ends_at, latest_data_date()) if t is not None]
    return start, (min(ends) if ends else timezone.now())


def _outcomes(offer, *, basis: str) -> tuple[list[float], list[float], int, int, Decimal]:
    """Revenue per person for the offer's recipients and hold-out members inside its
    window (paid orders, as the organisation counts revenue, returns taking it back),
    how many of each bought, and the discount of its counted redemptions."""
    from customers.models import Order, OrderStatus
    from customers.selectors import order_revenue

    from .models import OfferRecipient, OfferRedemption

    start, end = _window(offer)
    members: dict[int, bool] = {}
    for customer_id, holdout in OfferRecipient.objects.filter(offer=offer).values_list(
        "customer_id", "holdout"
    ):
        # the loyalty reward offer may list a customer twice; a person counts once
        members[customer_id] = members.get(customer_id, False) or holdout
    revenue: dict[int, float] = defaultdict(float)
    buyers: set[int] = set()
    if members and end >= start:
        for customer_id, counted, is_return in (
            Order.objects.filter(
                customer_id__in=list(members),
                status=OrderStatus.PAID,
                ordered_at__gte=start,
                ordered_at__lte=end,
            )
            .annotate(counted=order_revenue(basis))
            .values_list("customer_id", "counted", "is_return")
        ):
            revenue[customer_id] += float(counted or 0)
            if not is_return:
                buyers.add(customer_id)
    treated: list[float] = []
    held: list[float] = []
    for customer_id, holdout in members.items():
        (held if holdout else treated).append(revenue.get(customer_id, 0.0))
    treated_orders = sum(1 for c, h in members.items() if not h and c in buyers)
    held_orders = sum(1 for c, h in members.items() if h and c in buyers)
    discount = OfferRedemption.objects.filter(offer=offer, counted=True).aggregate(
        s=Sum("discount")
    )["s"] or Decimal(0)
    return treated, held, treated_orders, held_orders, discount


def comparison(offers: list, *, organization) -> dict[str, Any]:
    """The pooled hold-out comparison of `offers`: got-the-offer against hold-out.
    A person in two offers counts once in each (each offer's comparison is its own)."""
    result: dict[str, Any] = {
        "status": "none",
        "offers": [o.pk for o in offers],
        "expected_uplift": None,
        "expected_incremental_revenue_per_recipient": None,
        "expected_cost_per_recipient": None,
        "interval": None,
        "uplift_interval": None,
        "recipients": 0,
        "holdout": 0,
        "conversion_rate": None,
        "holdout_conversion_rate": None,
        "revenue_per_recipient": None,
        "revenue_per_holdout_member": None,
        "supported": False,
    }
    treated: list[float] = []
    held: list[float] = []
    treated_orders = held_orders = 0
    discount = Decimal(0)
    for offer in offers:
        t, h, t_orders, h_orders, d = _outcomes(
            offer, basis=getattr(organization, "revenue_basis", "") or "goods"
        )
        treated += t
        held += h
        treated_orders += t_orders
        held_orders += h_orders
        discount += d
    n1, n0 = len(treated), len(held)
    result.update(recipients=n1, holdout=n0)
    if n1:
        result["conversion_rate"] = treated_orders / n1
        result["revenue_per_recipient"] = round(sum(treated) / n1, 2)
    if n0:
        result["holdout_conversion_rate"] = held_orders / n0
        result["revenue_per_holdout_member"] = round(sum(held) / n0, 2)
    if n1 < MIN_GROUP or n0 < MIN_GROUP:
        return result
    p1, p0 = treated_orders / n1, held_orders / n0
    m1, v1 = _mean_var(treated)
    m0, v0 = _mean_var(held)
    diff = m1 - m0
    se = math.sqrt(v1 / n1 + v0 / n0)
    se_p = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    lo, hi = diff - Z95 * se, diff + Z95 * se
    result.update(
        status="measured",
        expected_uplift=round(100 * (p1 - p0), 2),
        expected_incremental_revenue_per_recipient=round(diff, 2),
        expected_cost_per_recipient=round(float(discount) / n1, 2),
        interval=[round(lo, 2), round(hi, 2)],
        uplift_interval=[
            round(100 * (p1 - p0 - Z95 * se_p), 2),
            round(100 * (p1 - p0 + Z95 * se_p), 2),
        ],
        supported=lo > 0,
    )
    return result


EVIDENCE_KEYS = (
    "status",
    "offers",
    "expected_uplift",
    "expected_incremental_revenue_per_recipient",
    "expected_cost_per_recipient",
    "interval",
    "uplift_interval",
    "recipients",
    "holdout",
    "supported",
)


def _evidence(offers: list, *, organization) -> dict[str, Any]:
    found = comparison(offers, organization=organization)
    return {k: found[k] for k in EVIDENCE_KEYS}


# --- the suggestions ---------------------------------------------------------------------
def _live_segments() -> list:
    from segmentation.selectors import segments_current

    return [s for s in segments_current() if s.parent_id is None and s.size > 0]


def segment_suggestions(*, organization) -> list[dict[str, Any]]:
    """One suggested offer per live segment (top-level segments and rule segments),
    biggest first within each kind, with evidence from earlier offers or "none"."""
    from customers.models import Customer

    symbol = {"GBP": "£", "USD": "$", "EUR": "€", "JPY": "¥"}.get(
        (getattr(organization, "currency", "") or "").upper(), ""
    )
    segments = _live_segments()
    if not segments:
        return []
    today = _today()
    churn = _churn_by_customer()
    base = _traits_of(Customer.objects.filter(~Q(orders_count=0)), today=today, churn=churn)
    past = _finished_offers(timezone.now())
    out = []
    for segment in segments:
        traits = segment_traits(segment, today=today, churn=churn)
        if not traits["customers"]:
            continue
        angle, offer, why = _angle(traits, base, symbol)
        same = [o for o in past if o.kind == offer["kind"] and _same_value(o.value, offer["value"])]
        out.append(
            {
                "segment_id": segment.pk,
                "segment": segment.name,
                "customers": traits["customers"],
                "angle": angle,
                "angle_label": ANGLE_WORDS[angle],
                "offer": offer,
                "why": why,
                "traits": {k: v for k, v in traits.items() if k != "customers"},
                "evidence": _evidence(same, organization=organization),
            }
        )
    return out
