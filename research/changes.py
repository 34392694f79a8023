"""What changed this month: trends in the business's own data, in plain sentences.

`compute_changes` runs in the research step (research/analysis.py stores its list in
`ResearchRun.changes`); the dashboard panel and `GET research/changes/` only read
that list, so no page computes anything.

The last 30 days up to and including `as_of` (UTC days) are compared with the 30
days before, from a handful of grouped queries on indexed date columns:

- products and categories whose sales rose or fell (paid order lines of
  merchandise, returns netted), with the demand forecast where there is one;
- segments that grew or shrank between the live segmentation run and the run
  about 30 days earlier (or the previous one), from the runs' size summaries;
- where new customers came from (their first order's `channel`);
- feedback themes of the research run that are growing or shrinking.

Nothing is reported on noise: a change needs enough volume, a large enough move
and a one-sided binomial test below 0.05 (the same kind of test
research/text/trends.py uses for themes). Products and categories are tested
against the shop's own overall movement, so a busy December does not make every
product "rise"; the sentence still gives the plain before and after numbers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, F, Q, Sum, When
from django.db.models.functions import Abs
from django.urls import NoReverseMatch, reverse

from accounts.tenancy import current_organization_id, tenant_context

WINDOW_DAYS = 30
MAX_ITEMS = 6
MAX_PER_KIND = 2  # so six items are not all products
SIGNIFICANCE = 0.05
MIN_UNITS = 10  # units in the two windows together before a product is mentioned
MIN_CHANGE = 0.30  # products, categories, sources: at least a 30% move
MIN_NEW_CUSTOMERS = 10  # new customers of a channel in the two windows together
MIN_SEGMENT_CUSTOMERS = 20
MIN_SEGMENT_CHANGE = 0.20
SEGMENT_LOOKBACK_DAYS = 30
PANEL_TEMPLATE = "research/_changes_panel.html"


# --- small helpers ---------------------------------------------------------------------
def _binomial_p(k: int, n: int, p: float, *, greater: bool) -> float:
    """One-sided binomial test: how likely k or more (fewer) of n events fall in
    the last window when each does with probability p."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 < p < 1:
        return 1.0
    return float(binomtest(k, n, p, alternative="greater" if greater else "less").pvalue)


def _windows(as_of: dt.date) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(start of the previous window, start of the last window, end), UTC."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)
    last_start = end - dt.timedelta(days=WINDOW_DAYS)
    return last_start - dt.timedelta(days=WINDOW_DAYS), last_start, end


def _url(name: str, *args: Any, query: str = "") -> str | None:
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{query}" if query else url


def _pct(change: float) -> str:
    return f"{abs(round(change * 100)):,}%"


def _num(value: float) -> str:
    return f"{round(value):,}"


def _day(value: dt.date) -> str:
    return f"{value.day} {value:%b %Y}"


def _float(value: Decimal | float | int | None) -> float:
    return float(value or 0)


def _direction(
    last: float, prev: float, a: int, n: int, p0: float, *, min_change: float
) -> tuple[str | None, float | None]:
    """("up" | "down" | "new" | None, relative change): a move of at least
    `min_change` whose event counts (a of n in the last window) pass the test
    against the expected share p0."""
    if prev <= 0:
        if last > 0 and _binomial_p(a, n, p0, greater=True) < SIGNIFICANCE:
            return "new", None
        return None, None
    change = (last - prev) / prev
    if change >= min_change and _binomial_p(a, n, p0, greater=True) < SIGNIFICANCE:
        return "up", change
    if change <= -min_change and _binomial_p(a, n, p0, greater=False) < SIGNIFICANCE:
        return "down", change
    return None, change


# --- products and categories -----------------------------------------------------------
def _sales_rows(key: str, prev_start, last_start, end) -> list[dict[str, Any]]:
    """Per `key` ("sku" or "category") of the paid order lines of merchandise in the
    two windows: net units, net revenue and the number of purchase lines in each."""
    from customers.models import OrderLine, Product

    returned = Q(order__is_return=True)
    units = Case(When(returned, then=-Abs("quantity")), default=F("quantity"))
    amount = Case(When(returned | Q(quantity__lt=0), then=-Abs("amount")), default=F("amount"))
    in_last = Q(order__ordered_at__gte=last_start)
    bought = Q(order__is_return=False, quantity__gt=0)
    not_goods = Product.objects.filter(Q(merchandise=False) | Q(hidden=True)).values("sku")
    return list(
        OrderLine.objects.filter(
            # the orders' own organisation too, so the database can read the orders
            # by their (organisation, ordered_at) index
            order__organization_id=current_organization_id(),
            order__status="paid",
            order__ordered_at__gte=prev_start,
            order__ordered_at__lt=end,
        )
        .exclude(**{key: ""})
        .exclude(sku__in=not_goods)
        .values(key)
        .annotate(
            last_units=Sum(units, filter=in_last),
            prev_units=Sum(units, filter=~in_last),
            last_revenue=Sum(amount, filter=in_last),
            prev_revenue=Sum(amount, filter=~in_last),
            last_lines=Count("id", filter=in_last & bought),
            prev_lines=Count("id", filter=~in_last & bought),
        )
        .order_by()
    )


def _sales_changes(
    kind: str, rows: list[dict[str, Any]], key: str, *, currency: str
) -> list[dict[str, Any]]:
    total_last = sum(r["last_lines"] for r in rows)
    total_prev = sum(r["prev_lines"] for r in rows)
    if total_last + total_prev == 0:
        return []
    p0 = total_last / (total_last + total_prev)  # the shop's own movement
    revenue_both = sum(_float(r["last_revenue"]) + _float(r["prev_revenue"]) for r in rows)
    units_both = sum(_float(r["last_units"]) + _float(r["prev_units"]) for r in rows)
    shop_change = (total_last - total_prev) / total_prev if total_prev else None
    out = []
    for r in rows:
        last, prev = _float(r["last_units"]), _float(r["prev_units"])
        if last < 0 or prev < 0 or last + prev < MIN_UNITS:
            continue
        a, n = r["last_lines"], r["last_lines"] + r["prev_lines"]
        direction, change = _direction(last, prev, a, n, p0, min_change=MIN_CHANGE)
        if direction is None:
            continue
        last_rev, prev_rev = _float(r["last_revenue"]), _float(r["prev_revenue"])
        if revenue_both > 0:
            weight = abs(last_rev - prev_rev) / revenue_both
        else:
            weight = abs(last - prev) / max(units_both, 1.0)
        out.append(
            {
                "kind": kind,
                "direction": direction,
                "key": r[key],
                "change": change,
                "weight": weight,
                "evidence": {
                    "units_last_30d": round(last, 2),
                    "units_prev_30d": round(prev, 2),
                    "revenue_last_30d": round(last_rev, 2),
                    "revenue_prev_30d": round(prev_rev, 2),
                    "orders_last_30d": r["last_lines"],
                    "orders_prev_30d": r["prev_lines"],
                    "change": None if change is None else round(change, 4),
                    "shop_orders_change": None if shop_change is None else round(shop_change, 4),
                    "currency": currency,
                },
            }
        )
    return out


def _sales_sentence(subject: str, item: dict[str, Any]) -> str:
    ev = item["evidence"]
    last, prev = ev["units_last_30d"], ev["units_prev_30d"]
    if item["direction"] == "new":
        return (
            f"{subject[0].upper()}{subject[1:]} sold {_num(last)} units in the last "
            f"{WINDOW_DAYS} days, with none in the {WINDOW_DAYS} days before."
        )
    if item["direction"] == "up" and item["change"] >= 2:  # "rose 15,020%" reads badly
        return (
            f"Sales of {subject} jumped in the last {WINDOW_DAYS} days: {_num(last)} units, "
            f"against {_num(prev)} in the {WINDOW_DAYS} days before."
        )
    verb = "rose" if item["direction"] == "up" else "fell"
    return (
        f"Sales of {subject} {verb} {_pct(item['change'])} in the last {WINDOW_DAYS} days "
        f"({_num(prev)} → {_num(last)} units)."
    )


def _forecasts(skus: list[str]) -> dict[str, Any]:
    """The live prediction run's demand forecasts of these skus."""
    try:
        from predictions.models import PredictionRun, ProductForecast
    except ImportError:  # predictions not installed
        return {}
    run_id = PredictionRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    if run_id is None or not skus:
        return {}
    found = ProductForecast.objects.filter(run_id=run_id, sku__in=skus)
    return {f.sku: f for f in found.only("sku", "total_4w", "trend")}


def product_changes(*, as_of: dt.date, currency: str = "") -> list[dict[str, Any]]:
    from customers.models import Product

    prev_start, last_start, end = _windows(as_of)
    items = _sales_changes(
        "product", _sales_rows("sku", prev_start, last_start, end), "sku", currency=currency
    )
    items.sort(key=lambda i: -i["weight"])
    items = items[: MAX_ITEMS * 2]
    skus = [i["key"] for i in items]
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus).only("pk", "sku", "name")}
    forecasts = _forecasts(skus)
    out = []
    for item in items:
        sku = item.pop("key")
        product = products.get(sku)
        name = (product.name if product else "") or sku
        item["evidence"].update({"sku": sku, "product_id": product.pk if product else None})
        item["title"] = {"up": "Selling more", "down": "Selling less", "new": "New seller"}[
            item["direction"]
        ] + f": {name}"
        sentence = _sales_sentence(name, item)
        forecast = forecasts.get(sku)
        if forecast is not None:
            item["evidence"]["forecast_next_4w"] = round(forecast.total_4w, 1)
            item["evidence"]["forecast_trend"] = forecast.trend
            rising = item["direction"] in ("up", "new") and forecast.trend == "rising"
            falling = item["direction"] == "down" and forecast.trend == "falling"
            if rising or falling:
                sentence += (
                    f" Expected to keep {'rising' if rising else 'falling'}: forecast "
                    f"{_num(forecast.total_4w)} units in the next 4 weeks."
                )
                item["weight"] *= 1.2  # two signals agree
        item["sentence"] = sentence
        item["url"] = (
            _url("customers:product", product.pk)
            if product
            else _url("customers:products", query=f"q={sku}")
        )
        out.append(item)
    return out


def category_changes(*, as_of: dt.date, currency: str = "") -> list[dict[str, Any]]:
    from urllib.parse import urlencode

    prev_start, last_start, end = _windows(as_of)
    rows = _sales_rows("category", prev_start, last_start, end)
    if len(rows) < 2:  # one category: the shop's own total, not a change within it
        return []
    out = []
    for item in _sales_changes("category", rows, "category", currency=currency):
        category = item.pop("key")
        item["evidence"]["category"] = category
        item["title"] = {"up": "Category up", "down": "Category down", "new": "New category"}[
            item["direction"]
        ] + f": {category}"
        item["sentence"] = _sales_sentence(f"the {category} category", item)
        item["url"] = _url("customers:products", query=urlencode({"category": category}))
        out.append(item)
    return out


# --- segments --------------------------------------------------------------------------
def segment_changes(*, as_of: dt.date) -> list[dict[str, Any]]:
    """Live segments (top level, cluster and RFM) whose size moved between the run
    about 30 days before the live one (or else the previous run) and the live run."""
    try:
        from segmentation.models import Segment, SegmentationRun, SegmentKind
    except ImportError:
        return []
    fields = ("pk", "as_of", "created_at", "summary", "n_customers")  # not the projection
    live = SegmentationRun.objects.filter(is_live=True).only(*fields).first()
    if live is None:
        return []
    earlier_runs = (
        SegmentationRun.objects.filter(
            status="succeeded", as_of__lt=live.as_of, created_at__lte=live.created_at
        )
        .exclude(pk=live.pk)
        .only(*fields)
    )
    earlier = (
        earlier_runs.filter(as_of__lte=live.as_of - dt.timedelta(days=SEGMENT_LOOKBACK_DAYS))
        .order_by("-as_of", "-created_at", "-id")
        .first()
    ) or earlier_runs.order_by("-as_of", "-created_at", "-id").first()
    if earlier is None:
        return []
    now_sizes = {
        k: (v or {}).get("size", 0) for k, v in (live.summary or {}).get("segments", {}).items()
    }
    then_sizes = {
        k: (v or {}).get("size", 0) for k, v in (earlier.summary or {}).get("segments", {}).items()
    }
    n_now, n_then = live.n_customers, earlier.n_customers
    if not now_sizes or n_now + n_then == 0:
        return []
    p0 = n_now / (n_now + n_then)  # the customer base's own growth
    segments = Segment.objects.filter(
        pk__in=[int(k) for k in now_sizes if str(k).isdigit()],
        is_active=True,
        parent__isnull=True,
        kind__in=[SegmentKind.CLUSTER, SegmentKind.RFM],
    ).only("pk", "name")
    out = []
    for segment in segments:
        a = int(now_sizes.get(str(segment.pk), 0))
        b = int(then_sizes.get(str(segment.pk), 0))
        if a + b < MIN_SEGMENT_CUSTOMERS:
            continue
        direction, change = _direction(a, b, a, a + b, p0, min_change=MIN_SEGMENT_CHANGE)
        if direction is None:
            continue
        since = _day(earlier.as_of)
        if direction == "new":
            title = f"New group: {segment.name}"
            sentence = (
                f"A new group of customers appeared: {segment.name}, {_num(a)} customers "
                f"(segments of {_day(live.as_of)} against {since})."
            )
        else:
            grew = direction == "up"
            title = f"{segment.name} {'growing' if grew else 'shrinking'}"
            sentence = (
                f"{segment.name} {'grew' if grew else 'shrank'} from {_num(b)} to {_num(a)} "
                f"customers ({'+' if grew else '−'}{_pct(change or 0)}) since {since}."
            )
        out.append(
            {
                "kind": "segment",
                "direction": direction,
                "title": title,
                "sentence": sentence,
                "url": _url("segmentation:segment_detail", segment.pk),
                "evidence": {
                    "segment_id": segment.pk,
                    "size_now": a,
                    "size_before": b,
                    "as_of_now": live.as_of.isoformat(),
                    "as_of_before": earlier.as_of.isoformat(),
                    "customers_now": n_now,
                    "customers_before": n_then,
                    "change": None if change is None else round(change, 4),
                },
                "weight": abs(a - b) / max(n_now, n_then, 1),
            }
        )
    return out


# --- where new customers came from -----------------------------------------------------
def source_changes(*, as_of: dt.date) -> list[dict[str, Any]]:
    """New customers (first purchase in a window) per channel of that first order."""
    from customers.models import Order

    prev_start, last_start, end = _windows(as_of)
    in_last = Q(ordered_at__gte=last_start)
    rows = (
        Order.objects.filter(
            status="paid",
            is_return=False,
            ordered_at__gte=prev_start,
            ordered_at__lt=end,
            customer__isnull=False,
            customer__erased_at__isnull=True,
            customer__first_order_at=F("ordered_at"),
        )
        .values("channel")
        .annotate(
            last=Count("customer", distinct=True, filter=in_last),
            prev=Count("customer", distinct=True, filter=~in_last),
        )
        .order_by()
    )
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        channel = (r["channel"] or "").strip()
        if not channel:
            continue  # no channel recorded: nothing to act on
        entry = merged.setdefault(channel.lower(), {"channel": channel, "last": 0, "prev": 0})
        entry["last"] += r["last"]
        entry["prev"] += r["prev"]
    total = sum(e["last"] + e["prev"] for e in merged.values())
    out = []
    for entry in merged.values():
        a, b, channel = entry["last"], entry["prev"], entry["channel"]
        if a + b < MIN_NEW_CUSTOMERS:
            continue
        # new customers arrive at some rate per 30 days: equal windows, equal chances
        direction, change = _direction(a, b, a, a + b, 0.5, min_change=MIN_CHANGE)
        if direction is None:
            continue
        if direction == "new":
            title = f"New customers from {channel}"
            sentence = (
                f"{channel} brought {_num(a)} new customers in the last {WINDOW_DAYS} days, "
                f"and none in the {WINDOW_DAYS} days before."
            )
        elif direction == "up":
            title = f"More new customers from {channel}"
            sentence = (
                f"{_num(a)} new customers came through {channel} in the last {WINDOW_DAYS} "
                f"days, up {_pct(change or 0)} from {_num(b)} in the {WINDOW_DAYS} days before."
            )
        else:
            title = f"Fewer new customers from {channel}"
            sentence = (
                f"Only {_num(a)} new customers came through {channel} in the last "
                f"{WINDOW_DAYS} days, down {_pct(change or 0)} from {_num(b)} in the "
                f"{WINDOW_DAYS} days before."
            )
        out.append(
            {
                "kind": "source",
                "direction": direction,
                "title": title,
                "sentence": sentence,
                # the newest customers who have ordered, for a look at who they are
                "url": _url("customers:list", query="has_ordered=true&sort=newest"),
                "evidence": {
                    "channel": channel,
                    "new_customers_last_30d": a,
                    "new_customers_prev_30d": b,
                    "change": None if change is None else round(change, 4),
                },
                "weight": abs(a - b) / max(total, 1),
            }
        )
    return out


# --- feedback themes -------------------------------------------------------------------
def theme_changes(*, as_of: dt.date, run=None) -> list[dict[str, Any]]:
    """Themes of the research run (the newest one unless given) that the research
    step found growing or shrinking (Theme.trend, research/text/trends.py)."""
    from customers.models import Feedback
    from research.models import ResearchRun, Theme

    if run is None:
        run = ResearchRun.objects.order_by("-id").only("pk").first()
    if run is None:
        return []
    themes = [
        t
        for t in Theme.objects.filter(run=run).only("pk", "label", "sentiment", "trend")
        if (t.trend or {}).get("trend") in ("growing", "shrinking")
    ]
    if not themes:
        return []
    prev_start, _, end = _windows(as_of)
    total = Feedback.objects.filter(created_at__gte=prev_start, created_at__lt=end).count()
    out = []
    for theme in themes:
        trend = theme.trend
        a, b = int(trend.get("last_30d") or 0), int(trend.get("prev_30d") or 0)
        growing = trend["trend"] == "growing"
        sentiment = theme.sentiment
        if sentiment is not None and sentiment <= -0.15:
            verb, noun = "complain about", "Complaints about"
        elif sentiment is not None and sentiment >= 0.15:
            verb, noun = "praise", "Praise for"
        else:
            verb, noun = "mention", "Mentions of"
        label = theme.label
        if growing and b == 0:
            direction = "new"
            sentence = (
                f"A new topic in feedback: customers {verb} “{label}”, {_num(a)} times in "
                f"the last {WINDOW_DAYS} days and not once in the {WINDOW_DAYS} days before."
            )
        else:
            direction = "up" if growing else "down"
            sentence = (
                f"{'More' if growing else 'Fewer'} customers {verb} “{label}”: {_num(a)} "
                f"times in the last {WINDOW_DAYS} days, {'up' if growing else 'down'} from "
                f"{_num(b)} in the {WINDOW_DAYS} days before."
            )
        out.append(
            {
                "kind": "theme",
                "direction": direction,
                "title": f"{noun} “{label}” {'rising' if growing else 'falling'}",
                "sentence": sentence,
                "url": _url("research:theme", theme.pk) or _url("research:overview"),
                "evidence": {
                    "theme_id": theme.pk,
                    "mentions_last_30d": a,
                    "mentions_prev_30d": b,
                    "change": trend.get("change"),
                    "sentiment": None if sentiment is None else round(sentiment, 3),
                    "feedback_in_both_windows": total,
                },
                "weight": abs(a - b) / max(total, a + b, 1),
            }
        )
    return out


# --- the list --------------------------------------------------------------------------
def _pick(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most important items by weight, at most MAX_PER_KIND of a kind unless
    there is room left over."""
    ranked = sorted(items, key=lambda i: -i["weight"])
    chosen: list[dict[str, Any]] = []
    per_kind: dict[str, int] = {}
    for item in ranked:
        if len(chosen) < MAX_ITEMS and per_kind.get(item["kind"], 0) < MAX_PER_KIND:
            chosen.append(item)
            per_kind[item["kind"]] = per_kind.get(item["kind"], 0) + 1
    for item in ranked:
        if len(chosen) >= MAX_ITEMS:
            break
        if item not in chosen:
            chosen.append(item)
    chosen.sort(key=lambda i: -i["weight"])
    keys = ("kind", "direction", "title", "sentence", "url", "evidence", "weight")
    return [{k: (round(i[k], 4) if k == "weight" else i[k]) for k in keys} for i in chosen]


def compute_changes(*, organization, as_of: dt.date, run=None) -> list[dict[str, Any]]:
    """The ~6 most important changes of the last 30 days up to `as_of`, each
    {"kind", "direction", "title", "sentence", "url", "evidence", "weight"},
    heaviest first. `run`: the research run whose themes to read (default: the
    newest)."""
    currency = getattr(organization, "currency", "") or ""
    with tenant_context(organization):
        items = [
            *product_changes(as_of=as_of, currency=currency),
            *category_changes(as_of=as_of, currency=currency),
            *segment_changes(as_of=as_of),
            *source_changes(as_of=as_of),
            *theme_changes(as_of=as_of, run=run),
        ]
    return _pick(items)


# --- what pages read -------------------------------------------------------------------
def latest_run():
    """The newest finished research run of the current organisation, or None."""
    from research.models import ResearchRun

    return ResearchRun.objects.order_by("-finished_at", "-id").first()


def dashboard_panel(*, request) -> dict | None:
    """The dashboard's "What changed this month": the latest research run's list
    (never computed here). None before the first run; an empty state when the run
    found nothing notable."""
    organization = getattr(request, "organization", None)
    if organization is None:
        return None
    with tenant_context(organization):
        run = latest_run()
    if run is None:
        return None
    return {
        "template": PANEL_TEMPLATE,
        "context": {
            "changes": list(run.changes or [])[:MAX_ITEMS],
            "as_of": run.as_of,
            "computed_at": run.finished_at,
            "window_days": WINDOW_DAYS,
        },
    }
