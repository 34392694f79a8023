"""Query parameters every API list shares, and JSON bodies checked by a serializer,
read the same way everywhere."""

from __future__ import annotations

from django.db.models import Q

from core.exceptions import ApplicationError

# The largest id a database column holds (signed 64-bit); larger ones cannot name
# an object, and SQLite refuses to even compare them.
MAX_ID = 2**63 - 1


def id_param(value: str, name: str) -> int:
    """An object id given as a query parameter (`?customer=42`): a whole number from 1
    to 2^63-1, else a 400 naming the parameter."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        raise ApplicationError(
            f"'{name}' must be an id (a whole number).", {"fields": {name: "Not an id."}}
        )
    number = int(text[:20]) if len(text) <= 19 else MAX_ID + 1
    if not 1 <= number <= MAX_ID:
        raise ApplicationError(
            f"'{name}' must be an id from 1 to {MAX_ID}.", {"fields": {name: "Out of range."}}
        )
    return number


# Query parameters every list understands (pages and the renderer's format).
PAGE_PARAMS = frozenset({"page", "page_size", "cursor", "format"})


def check_list_params(params, allowed) -> None:
    """A list asked with a parameter it does not understand answers 400 naming it,
    instead of ignoring it (a misspelt filter would otherwise return everything)."""
    unknown = sorted(set(params) - set(allowed) - PAGE_PARAMS)
    if unknown:
        names = ", ".join(f"'{name[:40]}'" for name in unknown)
        offered = ", ".join(sorted({*allowed, *PAGE_PARAMS} - {"format"}))
        raise ApplicationError(
            f"Unknown parameter {names}: this list understands {offered}.",
            {"fields": {name[:40]: "Unknown parameter." for name in unknown}},
        )


def when_param(request, name: str):
    """An ISO 8601 date or time query parameter; without a zone, in the
    organisation's time zone. A 400 naming the parameter when it is not one."""
    import datetime as dt
    import zoneinfo

    from django.utils.dateparse import parse_date, parse_datetime

    value = request.query_params[name]
    try:
        parsed = parse_datetime(value) or parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApplicationError(
            f"'{name}' must be an ISO 8601 date or time.", {"fields": {name: "Not a date."}}
        )
    if not isinstance(parsed, dt.datetime):
        parsed = dt.datetime.combine(parsed, dt.time())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(request.organization.time_zone or "UTC"))
    try:
        # the database compares in UTC; year 1 at +14:00 is before any UTC time.
        # Sent in UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts
        # ("2904-11-14T05:41:14-23:22" answered 500)
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ApplicationError(
            f"'{name}' is out of range once converted to UTC.", {"fields": {name: "Out of range."}}
        ) from None


UPDATED_SINCE = "updated_since"


def updated_since_filter(request, queryset, field: str = "updated_at", *, customer=None):
    """`?updated_since=`: only rows changed at or after that time (change time,
    not order or event date).

    For customers (a customer queryset, or rows of one customer each whose path to the
    customer is `customer`, such as "customer" for predictions), a pipeline run's
    changes count too: their segments or shown predictions, marked in the narrow
    `customers.CustomerChange` table instead of the customer row."""
    if not request.query_params.get(UPDATED_SINCE):
        return queryset
    since = when_param(request, UPDATED_SINCE)
    changed = Q(**{f"{field}__gte": since})
    if customer is None and queryset.model._meta.label == "customers.Customer":
        customer = "pk"
    elif customer is not None:
        customer = f"{customer}_id"
    if customer is not None:
        changed |= _marked_since(since, customer)
    return queryset.filter(changed)


# Up to this many customers marked changed since the time asked for are read as ids
# (an index range of the marks), past it each row is checked against its mark.
FEW_MARKS = 5_000


def _marked_since(since, customer: str) -> Q:
    """Rows whose customer (`customer`: "pk", or the path of the customer's id) a run
    marked changed at or after `since` (`customers.CustomerChange`).

    Written so that a page in id order stays a few milliseconds either way: when few
    were marked (a quiet night, or a time after the last run), their ids are read
    from the (organisation, changed_at) index and the condition is an id list the
    database ORs with the `updated_at` index; when many were (a run that moved
    everyone), each row read in id order is checked against its mark through the
    (organisation, customer) unique index, and most rows match, so a page fills
    quickly. A hashed `IN (subquery)` instead built the set of every mark first: a
    million of them, 0.7 s for each page (bench/customer_changes.py)."""
    from django.db.models import Exists, OuterRef

    from customers.models import CustomerChange

    marks = CustomerChange.objects.filter(changed_at__gte=since)
    few = list(marks.order_by().values_list("customer_id", flat=True)[: FEW_MARKS + 1])
    if len(few) <= FEW_MARKS:
        return Q(**{f"{customer}__in": few}) if few else Q(pk__in=[])
    return Q(Exists(marks.filter(customer_id=OuterRef(customer))))


def valid_body(serializer_class, request, *, given_only: bool = False, **kwargs) -> dict:
    """The request's JSON object checked by `serializer_class`: its validated data
    (only the keys the body gave, with `given_only`, for partial changes); a body that
    is not an object, or a field that fails, answers 400 naming each field."""
    if not isinstance(request.data, dict):
        raise ApplicationError("The body must be a JSON object.")
    data = serializer_class(data=request.data, **kwargs)
    if not data.is_valid():
        fields = {k: " ".join(str(m) for m in v) for k, v in data.errors.items()}
        raise ApplicationError(
            "The request is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
            {"fields": fields},
        )
    if given_only:
        return {k: v for k, v in data.validated_data.items() if k in request.data}
    return dict(data.validated_data)
