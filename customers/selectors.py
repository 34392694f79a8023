"""Reads for customer data: lists that stay fast at a million customers, the
customer page, product sales, the dashboard's figures, and the hooks through which
segmentation adds its results (see `customers.registry`)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zoneinfo
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Max, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncMonth

from core.kept import kept_at, kept_callable, kept_get, kept_store

from . import registry
from .models import (
    SEGMENTA_EVENT_TYPES,
    Customer,
    DeletedOrder,
    Event,
    Feedback,
    Import,
    Order,
    OrderLine,
    OrderStatus,
    Product,
)
from .registry import (  # re-exported: segmentation registers through these names too
    register_customer_enricher,
    register_customer_filter,
    register_customer_panel,
    register_erasure_handler,
)
from .searchkeys import ascii_lower

__all__ = [
    "customer_segment_info",
    "dashboard_summary",
    "register_customer_enricher",
    "register_customer_filter",
    "register_customer_panel",
    "register_erasure_handler",
]

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off"}


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    v = value.lower()
    if v in TRUE_VALUES:
        return True
    if v in FALSE_VALUES:
        return False
    return None


# --- enrichment from segmentation -------------------------------------------------------------


def customer_segment_info(customer_ids: list[int]) -> dict[int, dict]:
    """{id: {"segment", "segments", "predictions"}} from every registered enricher
    (None / [] until segmentation registers one)."""
    info: dict[int, dict] = {
        cid: {"segment": None, "segments": [], "predictions": None} for cid in customer_ids
    }
    if not customer_ids:
        return info
    for enricher in registry.customer_enrichers():
        for cid, extra in (enricher(list(customer_ids)) or {}).items():
            if cid in info and extra:
                info[cid].update(extra)
    return info


# --- the customer list -----------------------------------------------------------------


def customers_active() -> QuerySet[Customer]:
    return Customer.objects.filter(erased_at__isnull=True)


# How a search reads each column: the column whose index holds its key (the names'
# keys are generated columns, customers.searchkeys; e-mails are stored lower-case).
SEARCH_KEYS = {"email": "email", "first_name": "first_name_key", "last_name": "last_name_key"}
MAX_RANGES = 8  # index ranges one column is read by (a term's spellings)
# The dotted and dotless i: upper('ı') is 'I', so "aydin" finds "Aydın"; lower('İ') is
# 'i' in a Turkish collation. Every other letter's spellings are its cases.
_I_SPELLINGS = {"i": "iIı", "I": "iIı", "ı": "iIı", "İ": "İi"}


def _spellings(ch: str) -> list[str] | None:
    """What a search key may hold where a term has `ch`: its spellings with A–Z lowered
    (so one for most ASCII characters); None when a case of `ch` is not one character
    (ß: "SS"), whose match only the exact condition can judge."""
    cases = set(_I_SPELLINGS.get(ch) or (ch, ch.lower(), ch.upper()))
    if any(len(c) != 1 for c in cases):
        return None
    return sorted({ascii_lower(c) for c in cases})


def _after(prefix: str) -> str | None:
    """The first string after every string that starts with `prefix`, in code point
    order (None: there is none)."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code == 0xD800:  # surrogates are no characters of stored text
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _key_prefixes(q: str) -> list[str]:
    """The key prefixes a match of `q` starts with: one for an ASCII term, one a
    spelling of its other letters, as far as MAX_RANGES allows; [] when not even the
    first letter has one."""
    prefixes = [""]
    for ch in q:
        forms = _spellings(ch)
        if forms is None or len(prefixes) * len(forms) > MAX_RANGES:
            break
        prefixes = [p + f for p in prefixes for f in forms]
    return prefixes if prefixes != [""] else []


def _starts(q: str, column: str) -> Q:
    """`column` starts with `q`, ignoring case, in a form the index of the column's
    search key serves under row-level security.

    PostgreSQL uses an index for a condition on a table with row-level security only
    when the condition's functions are leakproof: `UPPER(col) LIKE 'Q%'` (what
    `istartswith` writes) is not, and neither is `lower()`. Plain comparisons are: the
    key (the column with A–Z lowered, compared byte by byte) of a match of "Smith" lies
    from "smith" up to "smiti", one range of its index over the whole term. A letter
    outside ASCII keeps its case in the key, so each of its spellings is a range
    ("Ærø": "ærø", "ærØ", "Ærø", "ÆrØ"; as far as MAX_RANGES allows, then a shorter
    prefix). E-mails are stored lower-case: their column is their key.
    The rows found are then held to the exact `istartswith`, so no other row is ever
    shown. A term whose first letter has no spelling of one character (ß) has only the
    exact condition: it reads every customer of the organisation, but misses none."""
    exact = Q(**{f"{column}__istartswith": q})
    prefixes = _key_prefixes(q)
    if not prefixes:
        return exact
    key = SEARCH_KEYS[column]
    ranges = Q()
    for start in prefixes:
        bounds = {f"{key}__gte": start}
        end = _after(start)
        if end is not None:
            bounds[f"{key}__lt"] = end
        ranges |= Q(**bounds)
    return ranges & exact


def customer_filter(params) -> QuerySet[Customer]:
    """The organisation's (not erased) customers narrowed by list parameters."""
    qs = customers_active()
    external_id = (params.get("external_id") or "").strip()
    if external_id:
        qs = qs.filter(external_id=external_id)
    q = (params.get("search") or params.get("q") or "").strip()
    if q:
        cond = Q(external_id=q) | _starts(q, "email") | _starts(q, "last_name")
        cond |= _starts(q, "first_name")
        parts = q.split()
        if len(parts) == 2:
            cond |= _starts(parts[0], "first_name") & _starts(parts[1], "last_name")
        if "@" in q:
            cond |= Q(email=q.lower())
        qs = qs.filter(cond)
    country = (params.get("country") or "").strip()
    if country:
        qs = qs.filter(country=country)
    for name in ("accepts_email", "accepts_sms"):
        flag = _flag(params.get(name))
        if flag is not None:
            qs = qs.filter(**{name: flag})
    has_ordered = _flag(params.get("has_ordered"))
    if has_ordered is True:
        qs = qs.filter(orders_count__gt=0)
    elif has_ordered is False:
        qs = qs.filter(orders_count=0)
    for extra in registry.customer_filters():
        value = params.get(extra.param)
        if value:
            qs = extra.func(qs, value)
    return qs


# sort key -> (field, descending, nullable, label)
CUSTOMER_SORTS = {
    "recent": ("last_order_at", True, True, "Most recent order"),
    "spent": ("total_spent", True, False, "Most spent"),
    "orders": ("orders_count", True, False, "Most orders"),
    "name": ("last_name", False, False, "Last name"),
    "id": ("external_id", False, False, "Customer id"),
    "newest": ("created_at", True, False, "Newest first"),
}
API_ORDERING = {
    "external_id": ("external_id", False),
    "-external_id": ("external_id", True),
    "last_order_at": ("last_order_at", False),
    "-last_order_at": ("last_order_at", True),
    "total_spent": ("total_spent", False),
    "-total_spent": ("total_spent", True),
    "orders_count": ("orders_count", False),
    "-orders_count": ("orders_count", True),
    "created_at": ("created_at", False),
    "-created_at": ("created_at", True),
    "last_name": ("last_name", False),
}


def _encode_cursor(value: Any, pk: int) -> str:
    if isinstance(value, dt.datetime):
        value = {"t": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps([value, pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, int] | None:
    """The (value, pk) a cursor names, or None when it is not one this module wrote
    (a forged or damaged `after=` starts from the first page)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, pk = json.loads(raw)
        if isinstance(value, dict) and set(value) == {"t"}:
            value = dt.datetime.fromisoformat(value["t"])
            if value.tzinfo is None:
                return None
        elif isinstance(value, dict) and set(value) == {"d"}:
            value = Decimal(value["d"])
            if not value.is_finite() or abs(value) >= 10**20:
                return None
        elif isinstance(value, bool) or not (
            value is None or isinstance(value, str) or isinstance(value, int)
        ):
            return None  # floats, bools, lists and other objects are never written
        if isinstance(value, int) and not -(2**63) < value < 2**63:
            return None
        if type(pk) is not int or not 0 < pk < 2**63:
            return None
        return value, pk
    except (ValueError, TypeError, ArithmeticError, json.JSONDecodeError):
        return None


# the type a cursor's value must have for each sort's field (None: nulls last)
_CURSOR_TYPES = {
    "last_order_at": dt.datetime,
    "total_spent": Decimal,
    "orders_count": int,
    "last_name": str,
    "external_id": str,
    "created_at": dt.datetime,
}


def _cursor_fits(value: Any, field: str, nullable: bool) -> bool:
    if value is None:
        return nullable
    expected = _CURSOR_TYPES.get(field)
    return expected is None or isinstance(value, expected)


def searching(params) -> bool:
    return bool((params.get("search") or params.get("q") or "").strip())


def unindexed(field: str):
    """`field` as an expression no index matches, for ordering a search's matches.

    Ordered by a plain column, PostgreSQL may walk that column's index and test every
    customer against the search (a million rows when nothing matches, seconds);
    ordered by this, it collects the matches through the search keys' indexes (a
    bitmap of a few rows) and sorts them (many matches: see `_walked`). Same order and values: + 0, + 0 seconds, || ''."""
    from django.db.models import DateTimeField, DecimalField, ExpressionWrapper, Value
    from django.db.models.functions import Concat

    model_field: Any = Customer._meta.get_field("id" if field == "pk" else field)
    if isinstance(model_field, DateTimeField):
        return ExpressionWrapper(F(field) + Value(dt.timedelta(0)), output_field=DateTimeField())
    if isinstance(model_field, DecimalField):
        return ExpressionWrapper(F(field) + Value(Decimal(0)), output_field=model_field)
    if model_field.get_internal_type() in ("CharField", "TextField"):
        return Concat(F(field), Value(""))
    return ExpressionWrapper(F(field) + 0, output_field=model_field)


# A search with more matches than this has its page read along the sort's index
# (`_walked`), as a list without a search is; with fewer, its matches are gathered
# through the search keys' indexes and sorted (`unindexed`).
SEARCH_MANY = 10_000
SEARCH_WALK = 5_000  # customers in the sort's order such a walk reads at most


def search_count(qs: QuerySet[Customer]) -> tuple[int, bool]:
    """A search's matches counted up to SEARCH_MANY (True: there are more). The API
    counts them once, to choose how the page is read and for the page's `count`."""
    return count_capped(qs, SEARCH_MANY)


def search_matches_many(qs: QuerySet[Customer]) -> bool:
    """More than SEARCH_MANY matches (reading at most that many)."""
    return search_count(qs)[1]


def search_ordering(
    qs: QuerySet[Customer], field: str, desc: bool, *, many: bool | None = None
) -> QuerySet[Customer]:
    """A search's matches in the order of `field` (the API's pages): sorted once
    gathered when they are few, read along the field's index when they are many
    (`many`: whether more than SEARCH_MANY match, when the caller counted them
    already; counted here otherwise)."""
    if many is None:
        many = search_matches_many(qs)
    column = F(field) if many else unindexed(field)
    return qs.order_by(column.desc() if desc else column.asc(), "-pk" if desc else "pk")


def _order_by(field: str, desc: bool, nullable: bool, column) -> tuple[Any, str]:
    if nullable:
        order = column.desc(nulls_last=True) if desc else column.asc(nulls_last=True)
    else:
        order = column.desc() if desc else column.asc()
    return order, "-pk" if desc else "pk"


def _after_position(
    qs: QuerySet[Customer], field: str, desc: bool, position: tuple[Any, int] | None
) -> QuerySet[Customer]:
    """The rows after `position` (value, pk) in the sort's order: `field <= v AND
    (field < v OR id < pk)` for a descending sort, whose first half is a range the
    index can start at."""
    if position is None:
        return qs
    value, pk = position
    before = "lt" if desc else "gt"
    return qs.filter(**{f"{field}__{before}e": value}).filter(
        Q(**{f"{field}__{before}": value}) | Q(**{f"pk__{before}": pk})
    )


def _walk_edge(walk: QuerySet[Customer], field: str) -> tuple[Any, int] | None:
    """(value, pk) of the SEARCH_WALK-th customer of `walk` (ordered), read from the
    sort's index alone; None when it holds fewer."""
    edge = list(walk.values_list(field, "pk")[SEARCH_WALK - 1 : SEARCH_WALK])
    return edge[0] if edge else None


def _walked(
    qs: QuerySet[Customer],
    *,
    field: str,
    desc: bool,
    nullable: bool,
    position: tuple[Any, int] | None,
    size: int,
) -> tuple[list[Customer], str | None] | None:
    """A page of a search with many matches, read along the sort's index from the
    position as far as the SEARCH_WALK-th customer there (in each part of a nullable
    sort); None when fewer than a page of matches lie that near (they lie further on:
    a search by last name sorted by last name), for them to be gathered and sorted."""
    order = _order_by(field, desc, nullable, F(field))
    within = "gt" if desc else "lt"
    rows: list[Customer] = []
    if position is None or position[0] is not None:
        walk, valued = Customer.objects.all(), qs
        if nullable:
            walk = walk.filter(**{f"{field}__isnull": False})
            valued = valued.filter(**{f"{field}__isnull": False})
        walk = _after_position(walk, field, desc, position).order_by(*order)
        valued = _after_position(valued, field, desc, position).order_by(*order)
        edge = _walk_edge(walk, field)
        if edge is not None:
            value, pk = edge
            valued = valued.filter(**{f"{field}__{within}e": value}).filter(
                Q(**{f"{field}__{within}": value}) | Q(**{f"pk__{within}e": pk})
            )
        rows = list(valued[: size + 1])
        if len(rows) <= size and edge is not None:
            return None
    if nullable and len(rows) <= size:
        # the customers without a value, last, in id order
        walk = Customer.objects.filter(**{f"{field}__isnull": True}).order_by(*order)
        empty = qs.filter(**{f"{field}__isnull": True}).order_by(*order)
        if position is not None and position[0] is None:
            walk = walk.filter(**{f"pk__{'lt' if desc else 'gt'}": position[1]})
            empty = empty.filter(**{f"pk__{'lt' if desc else 'gt'}": position[1]})
        edge = _walk_edge(walk, field)
        if edge is not None:
            empty = empty.filter(**{f"pk__{within}e": edge[1]})
        rows += list(empty[: size + 1 - len(rows)])
        if len(rows) <= size and edge is not None:
            return None
    if len(rows) > size:
        rows = rows[:size]
        return rows, _encode_cursor(getattr(rows[-1], field), rows[-1].pk)
    return rows, None  # the walk read every customer after the position


def customer_page(
    qs: QuerySet[Customer],
    *,
    sort: str = "recent",
    after: str = "",
    size: int = 50,
    search: bool = False,
    many: bool | None = None,
) -> tuple[list[Customer], str | None]:
    """One page by keyset ("after this row"), so page 1,000 costs what page 1 does.

    Each sort reads one index in order (customers migration 0011): the sort's field,
    then the id. NULLS LAST is only written for a nullable field (a NOT NULL column
    sorted NULLS LAST would not match its index). The position is a range the index
    can start at (`_after_position`); with a nullable field, the customers without
    a value (shown last) are read by a second query once the others run out. With
    `search`, a few matches are gathered first and sorted (see `unindexed`); many
    are read along the index as far as SEARCH_WALK customers (`_walked`), and only
    when that finds no page, gathered and sorted too (`many`: whether more than
    SEARCH_MANY match, when the caller counted them already; counted here otherwise)."""
    field, desc, nullable, _ = CUSTOMER_SORTS.get(sort, CUSTOMER_SORTS["recent"])
    position = _decode_cursor(after) if after else None
    if position is not None and not _cursor_fits(position[0], field, nullable):
        position = None
    if search and (search_matches_many(qs) if many is None else many):
        walked = _walked(
            qs, field=field, desc=desc, nullable=nullable, position=position, size=size
        )
        if walked is not None:
            return walked
    order = _order_by(field, desc, nullable, unindexed(field) if search else F(field))
    before = "lt" if desc else "gt"
    rows: list[Customer] = []
    if position is None or position[0] is not None:
        valued = qs.order_by(*order)
        if nullable:
            valued = valued.filter(**{f"{field}__isnull": False})
        rows = list(_after_position(valued, field, desc, position)[: size + 1])
    if nullable and len(rows) <= size:
        # the customers without a value, last, in id order
        empty = qs.filter(**{f"{field}__isnull": True}).order_by(*order)
        if position is not None and position[0] is None:
            empty = empty.filter(**{f"pk__{before}": position[1]})
        rows += list(empty[: size + 1 - len(rows)])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = _encode_cursor(getattr(last, field), last.pk)
    return rows, next_cursor


def count_capped(qs: QuerySet, cap: int = 10_000) -> tuple[int, bool]:
    """How many, counting at most `cap` rows (True when there are more)."""
    n = qs.order_by().values("pk")[: cap + 1].count()
    return min(n, cap), n > cap


def cached_per_organization(name: str, compute, timeout: int = 120):
    """`compute()` kept `timeout` seconds for the organisation in scope, under a key
    naming it (filter choices: a DISTINCT over a million rows is not worth repeating
    on every page; the API's kept counts)."""
    from django.core.cache import cache

    from accounts.tenancy import require_organization_id

    key = f"customers:{name}:org_{require_organization_id()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, timeout)
    return value


def customer_countries() -> list[str]:
    return cached_per_organization(
        "countries",
        lambda: list(
            customers_active()
            .exclude(country="")
            .order_by("country")
            .values_list("country", flat=True)
            .distinct()[:300]
        ),
    )


# --- one customer ----------------------------------------------------------------------


def customer_orders(customer: Customer, limit: int = 50) -> list[Order]:
    # The lines through the scoped manager: a related manager's prefetch would ask
    # for `order_id IN (...)` alone, which no index leading with the organisation
    # answers (and the page shows each order's first line: in their file's order).
    lines = Prefetch("lines", queryset=OrderLine.objects.order_by("position", "pk"))
    return list(
        Order.objects.filter(customer=customer)
        .prefetch_related(lines)
        .order_by("-ordered_at", "-pk")[:limit]
    )


def customer_events(customer: Customer, limit: int = 50) -> list[Event]:
    return list(Event.objects.filter(customer=customer).order_by("-occurred_at", "-pk")[:limit])


def customer_feedback(customer: Customer, limit: int = 20) -> list[Feedback]:
    return list(Feedback.objects.filter(customer=customer).order_by("-created_at", "-pk")[:limit])


def customer_panels(*, request, customer: Customer) -> list[dict]:
    """The customer page's reserved places, filled by whoever registered them."""
    panels = []
    for panel in registry.customer_panels():
        content = panel.func(request=request, customer=customer)
        panels.append(
            {
                "slot": panel.slot,
                "title": panel.title,
                "empty_text": panel.empty_text,
                "template": (content or {}).get("template"),
                "context": (content or {}).get("context", {}),
            }
        )
    return panels


# --- products --------------------------------------------------------------------------

PRODUCT_SORTS = {"name": "name", "sku": "sku", "category": "category", "newest": "-created_at"}


def product_filter(params) -> QuerySet[Product]:
    qs = Product.objects.all()
    q = (params.get("search") or params.get("q") or "").strip()
    if q:
        qs = qs.filter(Q(sku=q) | Q(name__icontains=q) | Q(sku__istartswith=q))
    category = (params.get("category") or "").strip()
    if category:
        qs = qs.filter(category=category)
    # merchandise=false finds postage, fees and adjustments; hidden=true the hidden
    for flag in ("merchandise", "hidden"):
        value = _FLAG_VALUES.get((params.get(flag) or "").strip().lower())
        if value is not None:
            qs = qs.filter(**{flag: value})
    return qs


_FLAG_VALUES = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def product_categories() -> list[str]:
    return cached_per_organization(
        "categories",
        lambda: list(
            Product.objects.exclude(category="")
            .order_by("category")
            .values_list("category", flat=True)
            .distinct()[:300]
        ),
    )


def _tz(organization) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def product_sales(*, product: Product, organization) -> dict:
    """Units and revenue per month (returns netted), for the product page's chart."""
    rows = (
        OrderLine.objects.filter(product=product)
        .annotate(month=TruncMonth("order__ordered_at", tzinfo=_tz(organization)))
        .values("month")
        .annotate(
            units=Sum("quantity"), revenue=Sum("amount"), orders=Count("order", distinct=True)
        )
        .order_by("month")
    )
    months, units, revenue = [], [], []
    total_units, total_revenue, total_orders = 0, Decimal(0), 0
    for r in rows:
        months.append(r["month"].strftime("%Y-%m"))
        units.append(int(r["units"] or 0))
        revenue.append(float(r["revenue"] or 0))
        total_units += int(r["units"] or 0)
        total_revenue += Decimal(r["revenue"] or 0)
        total_orders += r["orders"]
    buyers = (
        Order.objects.filter(lines__product=product, customer__isnull=False)
        .values("customer")
        .distinct()
        .count()
    )
    return {
        "months": months,
        "units": units,
        "revenue": revenue,
        "rows": [
            {"month": m, "units": u, "revenue": r}
            for m, u, r in zip(months, units, revenue, strict=True)
        ],
        "total_units": total_units,
        "total_revenue": total_revenue,
        "buyers": buyers,
    }


def product_recent_lines(product: Product, limit: int = 20) -> list[OrderLine]:
    return list(
        OrderLine.objects.filter(product=product)
        .select_related("order", "order__customer")
        .order_by("-order__ordered_at", "-pk")[:limit]
    )


# --- imports ---------------------------------------------------------------------------


def imports_recent(limit: int = 100) -> list[Import]:
    return list(
        Import.objects.select_related("job", "created_by").order_by("-created_at", "-pk")[:limit]
    )


# --- dashboard -------------------------------------------------------------------------


def latest_data_date(organization=None) -> dt.datetime | None:
    """The newest order or event (not counting the events Segmenta writes itself):
    'now' for the organisation's data. Anything more
    than a day ahead of the real now is not plausible (imports refuse it; older data
    may hold some) and must not make every real customer look lapsed."""
    from .services.limits import latest_plausible

    cap = latest_plausible()
    newest_order = Order.objects.filter(ordered_at__lte=cap).aggregate(m=Max("ordered_at"))["m"]
    newest_event = (
        Event.objects.filter(occurred_at__lte=cap)
        .exclude(type__in=SEGMENTA_EVENT_TYPES)
        .aggregate(m=Max("occurred_at"))["m"]
    )
    dates = [d for d in (newest_order, newest_event) if d]
    return max(dates) if dates else None


# What each organisation setting of `revenue_basis` counts, as the dashboard says it.
REVENUE_LABELS = {
    "goods": "paid orders, net of returns and discounts, without shipping and taxes",
    "goods_shipping": "paid orders, net of returns and discounts, with shipping, without taxes",
    "goods_shipping_taxes": "paid orders, net of returns and discounts, with shipping and taxes",
}


def order_revenue(basis: str):
    """An order's revenue as the organisation counts it: its goods (the lines'
    amounts, net of discounts), plus its shipping and taxes when the owner chose
    so (orders whose file gave none add nothing)."""
    expr: Any = F("total")
    if basis in ("goods_shipping", "goods_shipping_taxes"):
        expr = expr + Coalesce(F("shipping_amount"), Decimal(0))
    if basis == "goods_shipping_taxes":
        expr = expr + Coalesce(F("tax_amount"), Decimal(0))
    return expr


DASHBOARD_TIMEOUT = 600


def _stamp(model, field: str) -> str:
    from django.db.models import Max

    at = model.objects.aggregate(at=Max(field))["at"]
    return f"{at:%Y%m%d%H%M%S%f}" if at else "-"


def data_version() -> str:
    """Changes whenever the organisation's customers, orders or events are written
    (each has an (organization, updated_at) index, so this reads three index ends):
    part of the keys of figures worked out from them."""
    return ".".join(_stamp(model, "updated_at") for model in (Customer, Order, Event))


DASHBOARD_KEPT = "dashboard"  # the figures' name in `core.kept`


def _dashboard_version(organization) -> str:
    """What the dashboard's figures are worked out from: the data (its newest change
    times, read from the ends of its indexes) and the settings they depend on."""
    # the latest data date may be an event's; a deleted guest order moves no customer
    version = f"{data_version()}.{_stamp(DeletedOrder, 'deleted_at')}"
    settings_key = f"{organization.currency}:{organization.revenue_basis}:{organization.time_zone}"
    return f"{settings_key}:{version}"


def dashboard_summary(*, organization) -> dict:
    """The dashboard's figures: customers, orders, revenue, active customers (ordered
    in the 90 days up to the latest data date), repeat rate, revenue by month.

    Kept per organisation (`core.kept`) until its customers, orders or events change
    or the settings they depend on do, and ten minutes at most: worked out, they read
    every order and customer, 7 s at a million customers (the load test's slowest
    page). A small organisation (`KEPT_FIGURES_BACKGROUND_ABOVE`) works them out in
    the request when they are out of date. A big one is shown the figures it had
    while a background refresh works out the new ones (`figures_state` "updating";
    `figures_as_of`, when they were worked out, in the organisation's time zone);
    the first time, or when the figures it had were an empty shop's, "working" (no
    figures yet) while it does."""
    kept = kept_get(
        name=DASHBOARD_KEPT,
        version=_dashboard_version(organization),
        compute=lambda: _dashboard_figures(organization),
        max_age=DASHBOARD_TIMEOUT,
        refresh="customers.selectors:dashboard_figures_refresh",
        # an empty shop's figures, shown to one that has just imported its data,
        # would ask it to import them
        earlier_usable=lambda entry: bool(entry["value"].get("has_data")),
        first="later",
    )
    return {
        **(kept.value or {}),
        "figures_state": kept.state,
        "figures_as_of": kept.at.astimezone(_tz(organization)) if kept.at else None,
        # counted every time: a failed import changes no customer
        "imports_count": Import.objects.count(),
    }


def dashboard_figures_at(*, organization) -> dt.datetime | None:
    """When the organisation's dashboard figures were last worked out, in its time
    zone (the dashboard asks while a refresh is under way), or None."""
    at = kept_at(DASHBOARD_KEPT)
    return at.astimezone(_tz(organization)) if at is not None else None


@kept_callable
def dashboard_figures_refresh(*, organization) -> None:
    """Work out and keep the dashboard's figures (a background refresh, `core.kept`)."""
    version = _dashboard_version(organization)  # read first: see kept_store
    kept_store(name=DASHBOARD_KEPT, version=version, value=_dashboard_figures(organization))


def _dashboard_figures(organization) -> dict:
    customers = customers_active()
    n_customers = customers.count()
    # Only paid orders are purchases and revenue; pending ones are shown apart.
    # Revenue is in the organisation's currency (or none named): other currencies'
    # sums are listed apart, never added to it.
    paid = Q(status=OrderStatus.PAID)
    pending = Q(status=OrderStatus.PENDING)
    own = (organization.currency or "").upper()
    home = Q(currency="") | Q(currency=own)
    # goods only, or with shipping (and taxes): the owner's choice in the settings
    basis = organization.revenue_basis or "goods"
    revenue = order_revenue(basis)
    orders = Order.objects.aggregate(
        purchases=Count("pk", filter=paid & Q(is_return=False)),
        returns=Count("pk", filter=paid & Q(is_return=True)),
        revenue=Sum(revenue, filter=paid & home),
        pending=Count("pk", filter=pending & home),
        pending_revenue=Sum(revenue, filter=pending & home),
    )
    other_currencies = [
        {"currency": row["currency"], "revenue": row["revenue"] or Decimal(0)}
        for row in Order.objects.filter(paid)
        .exclude(home)
        .values("currency")
        .annotate(revenue=Sum(revenue))
        .order_by("currency")
    ]
    latest = latest_data_date()
    has_data = bool(n_customers or orders["purchases"] or orders["returns"])
    summary: dict[str, Any] = {
        "has_data": has_data,
        "currency": organization.currency,
        "customers_count": n_customers,
        "orders_count": orders["purchases"],
        "returns_count": orders["returns"],
        "revenue": orders["revenue"] or Decimal(0),
        "revenue_basis": basis,
        "revenue_label": REVENUE_LABELS.get(basis, REVENUE_LABELS["goods"]),
        "pending_count": orders["pending"],
        "pending_revenue": orders["pending_revenue"] or Decimal(0),
        "other_currencies": other_currencies,
        "latest_data_date": latest,
        "active_customers": 0,
        "repeat_rate": None,
        "chart": {"months": [], "revenue": [], "orders": []},
    }
    if not has_data:
        return summary
    if latest is not None:
        summary["active_customers"] = customers.filter(
            last_order_at__gt=latest - dt.timedelta(days=90)
        ).count()
    buyers = customers.filter(orders_count__gte=1).count()
    repeaters = customers.filter(orders_count__gte=2).count()
    summary["buyers"] = buyers
    summary["repeat_rate"] = round(100 * repeaters / buyers, 1) if buyers else None
    by_month = (
        Order.objects.filter(paid & home)
        .annotate(month=TruncMonth("ordered_at", tzinfo=_tz(organization)))
        .values("month")
        .annotate(revenue=Sum(revenue), orders=Count("pk", filter=Q(is_return=False)))
        .order_by("month")
    )
    for row in by_month:
        summary["chart"]["months"].append(row["month"].strftime("%Y-%m"))
        summary["chart"]["revenue"].append(round(float(row["revenue"] or 0), 2))
        summary["chart"]["orders"].append(row["orders"])
    # the chart's figures as table rows: its text alternative on the page
    summary["chart_rows"] = [
        {"month": m, "revenue": r, "orders": o}
        for m, r, o in zip(
            summary["chart"]["months"],
            summary["chart"]["revenue"],
            summary["chart"]["orders"],
            strict=True,
        )
    ]
    return summary
