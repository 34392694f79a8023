"""The loyalty page's figures (reads only, for `loyalty.views`): the programme in
plain words, members per tier, movement between tiers by month, revenue by tier
in the programme's period, customers with no tier, and — before there is a
programme — a starter suggestion from the shop's own spend.

Every query goes through the scoped managers, so it only ever sees the current
organisation's rows.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth

from .models import LoyaltyAccount, LoyaltyMetric, LoyaltyProgram, LoyaltyTier, TierChange

SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "AUD": "A$", "CAD": "C$", "NZD": "NZ$"}
MOVEMENT_MONTHS = 12
# The starter suggestion: the spend reached by half, one in five and one in twenty
# of the customers who bought in the last year.
SUGGESTED = (("Bronze", 0.5), ("Silver", 0.8), ("Gold", 0.95))
SUGGESTION_DAYS = 365


# --- words -----------------------------------------------------------------------------
def money(value: Decimal | float | int | None, currency: str, *, cents: bool | None = None) -> str:
    """£1,200 or £12.50 (whole amounts without pence); codes without a symbol
    follow the amount: 1,200 SEK."""
    amount = Decimal(str(value or 0))
    if cents is None:
        cents = amount != amount.to_integral_value()
    text = f"{amount:,.2f}" if cents else f"{amount.quantize(Decimal(1), ROUND_HALF_UP):,.0f}"
    code = (currency or "").upper()
    if text.startswith("-"):
        sign, text = "-", text[1:]
    else:
        sign = ""
    if code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{text}"
    return f"{sign}{text} {code}".strip()


def number(value: Decimal | float | int) -> str:
    """1 or 1.5 (no trailing zeros)."""
    amount = Decimal(str(value)).normalize()
    if amount == amount.to_integral_value():
        return f"{amount.quantize(Decimal(1)):,.0f}"
    return f"{amount:,f}"


def threshold_words(threshold: Decimal, metric: str, currency: str) -> str:
    if metric == LoyaltyMetric.ORDERS:
        n = number(threshold)
        return f"{n} order" if n == "1" else f"{n} orders"
    return money(threshold, currency)


def remaining_words(remaining: Decimal | float | None, metric: str, currency: str) -> str:
    """'£42 more' or '2 more orders' (for the progress bar)."""
    if remaining is None:
        return ""
    if metric == LoyaltyMetric.ORDERS:
        n = number(Decimal(str(remaining)).quantize(Decimal(1), rounding="ROUND_CEILING"))
        return f"{n} more order" if n == "1" else f"{n} more orders"
    return f"{money(remaining, currency)} more"


def period_words(days: int) -> str:
    if days == 365:
        return "the last 12 months"
    if days == 30:
        return "the last 30 days"
    return f"the last {days:,} days"


def program_sentences(
    program: LoyaltyProgram, tiers: list[LoyaltyTier], currency: str
) -> list[str]:
    """The programme in plain words, one sentence per rule."""
    metric = program.metric
    how = "after spending" if metric == LoyaltyMetric.SPEND else "after placing"
    within = period_words(program.period_days)
    lines = []
    for tier in tiers:
        if not tier.threshold:
            lines.append(f"Every customer who buys is {tier.name}.")
        else:
            lines.append(
                f"Customers reach {tier.name} {how} "
                f"{threshold_words(tier.threshold, metric, currency)} in {within}."
            )
    unit = SYMBOLS.get((currency or "").upper(), f"1 {(currency or '').upper()}".strip())
    unit = f"{unit}1" if unit in SYMBOLS.values() else unit
    points = number(program.points_per_unit)
    lines.append(
        f"They earn {points} point{'s' if points != '1' else ''} per {unit} spent; "
        "returns take the points back."
    )
    lines.append(
        f"{program.reward_points:,} points can be exchanged for "
        f"{money(program.reward_value, currency)} off, as a code for their next order."
    )
    if not program.active:
        lines.append(
            "The programme is switched off: tiers and points are not updated until "
            "you switch it on."
        )
    return lines


# --- the period ------------------------------------------------------------------------
def period_bounds(
    program: LoyaltyProgram, organization
) -> tuple[dt.datetime, dt.datetime, dt.date] | None:
    """[start, end) of the programme's rolling period in the organisation's time
    zone, ending with its last computation's cut-off day (or the latest data day)."""
    from customers.selectors import latest_data_date

    tz = _zone(organization)
    last_day = program.as_of
    if last_day is None:
        latest = latest_data_date()
        if latest is None:
            return None
        last_day = latest.astimezone(tz).date()
    first_day = last_day - dt.timedelta(days=program.period_days - 1)
    start = dt.datetime.combine(first_day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end, last_day


def _zone(organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _paid_home(organization) -> Q:
    from customers.models import OrderStatus

    own = (organization.currency or "").upper()
    return Q(status=OrderStatus.PAID) & (Q(currency="") | Q(currency=own))


# --- figures ---------------------------------------------------------------------------
def tier_figures(*, program: LoyaltyProgram, organization) -> dict[str, Any]:
    """Members per tier (with bar widths), revenue and revenue per member in the
    period, and the customers with no tier."""
    from customers.models import Order
    from customers.selectors import customers_active, order_revenue

    tiers = list(program.tiers.order_by("position", "threshold", "id"))
    active = customers_active()
    members = dict(
        LoyaltyAccount.objects.filter(tier__isnull=False, customer__erased_at__isnull=True)
        .values("tier_id")
        .annotate(n=Count("pk"))
        .values_list("tier_id", "n")
    )
    n_customers = active.count()
    tier_of = dict(
        LoyaltyAccount.objects.filter(
            tier__isnull=False, customer__erased_at__isnull=True
        ).values_list("customer_id", "tier_id")
    )
    revenue: dict[int | None, Decimal] = {}
    bounds = period_bounds(program, organization)
    if bounds is not None:
        start, end, _ = bounds
        rows = (
            Order.objects.filter(
                _paid_home(organization),
                customer__isnull=False,
                ordered_at__gte=start,
                ordered_at__lt=end,
            )
            .values("customer_id")
            .annotate(r=Sum(order_revenue(organization.revenue_basis or "goods")))
            .values_list("customer_id", "r")
        )
        for customer_id, amount in rows:
            key = tier_of.get(customer_id)
            revenue[key] = revenue.get(key, Decimal(0)) + (amount or Decimal(0))
    in_tiers = sum(members.values())
    no_tier = max(n_customers - in_tiers, 0)
    biggest = max([*members.values(), no_tier, 1])
    rows_out = []
    for tier in reversed(tiers):  # highest first, as an owner reads a ladder
        n = members.get(tier.pk, 0)
        amount = revenue.get(tier.pk, Decimal(0))
        rows_out.append(
            {
                "tier": tier,
                "members": n,
                "share": n / n_customers if n_customers else 0,
                "width": round(100 * n / biggest, 1),
                "revenue": amount,
                "per_member": (amount / n) if n else None,
            }
        )
    no_tier_revenue = revenue.get(None, Decimal(0))
    total_revenue = sum(revenue.values(), Decimal(0))
    for row in rows_out:
        row["revenue_share"] = float(row["revenue"] / total_revenue) if total_revenue > 0 else 0
    return {
        "tiers": tiers,
        "rows": rows_out,
        "customers": n_customers,
        "members": in_tiers,
        "no_tier": no_tier,
        "no_tier_width": round(100 * no_tier / biggest, 1),
        "no_tier_revenue": no_tier_revenue,
        "no_tier_per_member": (no_tier_revenue / no_tier) if no_tier else None,
        "total_revenue": total_revenue,
        "period": bounds,
    }


def movement(*, months: int = MOVEMENT_MONTHS) -> dict[str, Any]:
    """How many customers moved up a tier, joined one (from no tier) and moved down
    (to a lower tier or out of the tiers), per month (the last `months` months up
    to the latest change), with bar positions for the chart. Joining is kept apart
    because a programme's first computation places everyone at once."""
    rows = (
        TierChange.objects.annotate(month=TruncMonth("changed_on"))
        .values("month")
        .annotate(
            # (named apart from the model's own `up` field)
            n_up=Count("pk", filter=Q(up=True) & ~Q(from_tier="")),
            n_joined=Count("pk", filter=Q(up=True, from_tier="")),
            n_down=Count("pk", filter=Q(up=False)),
        )
        .order_by("month")
    )
    data = [
        {
            "month": _as_date(r["month"]),
            "up": r["n_up"],
            "joined": r["n_joined"],
            "down": r["n_down"],
        }
        for r in rows
    ]
    data = data[-months:]
    if not data:
        return {"months": [], "up": 0, "joined": 0, "down": 0}
    # fill the months with no change so the chart's spacing is honest
    filled = []
    by_month = {d["month"]: d for d in data}
    month = data[0]["month"]
    last = data[-1]["month"]
    while month <= last:
        filled.append(by_month.get(month, {"month": month, "up": 0, "joined": 0, "down": 0}))
        month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    filled = filled[-months:]
    biggest = max([max(d["up"], d["down"]) for d in filled] + [1])
    for d in filled:
        d["up_height"] = round(100 * d["up"] / biggest, 1)
        d["down_height"] = round(100 * d["down"] / biggest, 1)
    return {
        "months": filled,
        "up": sum(d["up"] for d in filled),
        "joined": sum(d["joined"] for d in filled),
        "down": sum(d["down"] for d in filled),
        "chart": _movement_svg(filled, biggest),
    }


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


def _movement_svg(months: list[dict], biggest: int) -> dict[str, Any]:
    """Bar positions for the movement chart (an inline SVG that scales to its box):
    up bars above the middle line, down bars below it."""
    width = 40 * len(months)
    half = 60
    bars = []
    for i, d in enumerate(months):
        x = i * 40 + 8
        up_h = round(half * d["up"] / biggest, 1)
        down_h = round(half * d["down"] / biggest, 1)
        bars.append(
            {
                **d,
                "x": x,
                "up_y": half - up_h,
                "up_h": up_h,
                "down_y": half,
                "down_h": down_h,
                "label_x": x + 12,
            }
        )
    return {"width": width, "height": 2 * half, "half": half, "bars": bars}


def suggestion(*, organization) -> dict[str, Any] | None:
    """A starter ladder from the shop's own spend in the last year: Bronze at what
    half the buying customers reach, Silver at one in five, Gold at one in twenty,
    each rounded to a friendly amount. None when there are too few customers."""
    from customers.models import Order
    from customers.selectors import latest_data_date, order_revenue

    latest = latest_data_date()
    if latest is None:
        return None
    start = latest - dt.timedelta(days=SUGGESTION_DAYS)
    spends = sorted(
        amount
        for amount in Order.objects.filter(
            _paid_home(organization),
            customer__isnull=False,
            customer__erased_at__isnull=True,
            ordered_at__gt=start,
            ordered_at__lte=latest,
        )
        .values("customer_id")
        .annotate(r=Sum(order_revenue(organization.revenue_basis or "goods")))
        .values_list("r", flat=True)
        if amount is not None and amount > 0
    )
    if len(spends) < 10:
        return None
    tiers: list[dict[str, Any]] = []
    previous = Decimal(0)
    for name, q in SUGGESTED:
        raw = spends[min(int(q * len(spends)), len(spends) - 1)]
        threshold = max(friendly(raw), previous + 1 if tiers else Decimal(1))
        reached = sum(1 for s in spends if s >= threshold)
        tiers.append({"name": name, "threshold": threshold, "customers": reached})
        previous = threshold
    return {
        "tiers": tiers,
        "buyers": len(spends),
        "period_days": SUGGESTION_DAYS,
        "words": [
            f"{t['name']} from {money(t['threshold'], organization.currency)} "
            f"({t['customers']:,} of your {len(spends):,} customers who bought in the last "
            "12 months would be there or higher)"
            for t in tiers
        ],
    }


def friendly(amount: Decimal) -> Decimal:
    """Round to two significant figures, at least 1: 187.30 -> 190, 1234 -> 1200."""
    amount = Decimal(str(amount))
    if amount < 1:
        return Decimal(1)
    digits = len(str(int(amount)))
    step = Decimal(10) ** max(digits - 2, 0)
    return max((amount / step).quantize(Decimal(1), ROUND_HALF_UP) * step, Decimal(1))
