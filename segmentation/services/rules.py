"""Rule segments: the owner's own conditions on customer fields, metrics and predictions.

A rule is JSON: a group `{"op": "and"|"or", "conditions": [...]}` whose
conditions are either conditions `{"field", "operator", "value"}` or nested
groups. It is evaluated as one database query over the organisation's
customers (erased customers never match), so a preview is one `COUNT`.

Fields come from a registry. This module registers the customer fields and
segment membership; other capabilities declare theirs as `rule_fields` in their
`core.capabilities.Capability` (the predictions layer adds churn risk, p_alive
and predicted CLV built with `related_value_field`, see `docs/segmentation.md`). Day-based conditions
("last order more than 90 days ago") count back from the organisation's latest
data date, the same reference a segmentation run uses, so a rule means the same
thing in the preview, on the segment page and in a run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.text import slugify

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError

log = logging.getLogger("segmenta.segments")

MAX_CONDITIONS = 30
MAX_DEPTH = 3
# "Days ago" conditions count back from the data's latest date; a hundred years
# covers any real history, and keeps the boundary a date Python can hold.
MAX_DAYS = 36_500
# Numbers compared with stored amounts and counts: the stored columns hold less
# (amounts are below 10^14), and a bound keeps '1e999999' from becoming an
# integer of a million digits.
MAX_NUMBER = Decimal(10) ** 15

# Operators per value type, with the words the builder shows.
OPERATORS: dict[str, dict[str, str]] = {
    "text": {"eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of"},
    "number": {
        "gt": "more than",
        "gte": "at least",
        "lt": "less than",
        "lte": "at most",
        "eq": "exactly",
        "between": "between",
    },
    "bool": {"is": "is"},
    "days_ago": {
        "within": "within the last … days",
        "more_than": "more than … days ago",
        "never": "never",
    },
    "choice": {"in": "is one of", "not_in": "is none of"},
    "segment": {"in": "is in", "not_in": "is not in"},
}


@dataclass(frozen=True)
class RuleContext:
    """What a condition may need besides its value."""

    reference_date: dt.date  # "days ago" counts back from here
    live_run_id: int | None


@dataclass(frozen=True)
class RuleField:
    """A field a rule may test.

    `to_q(operator, value, context)` returns a `Q` over `customers.Customer`;
    the value has already been checked and converted for `type`. `choices`
    returns `[(value, label)]` for `choice` fields (called when the builder
    renders, so it may query the current organisation).
    """

    name: str
    label: str
    type: str
    to_q: Callable[[str, Any, RuleContext], Q]
    help: str = ""
    choices: Callable[[], list[tuple[str, str]]] | None = None
    group: str = "Customer"

    @property
    def operators(self) -> dict[str, str]:
        return OPERATORS[self.type]


_FIELDS: dict[str, RuleField] = {}


def register_rule_field(rule_field: RuleField) -> None:
    """Add (or replace) one of this module's own fields. Other capabilities declare
    theirs as `Capability.rule_fields`."""
    if rule_field.type not in OPERATORS:
        raise ValueError(f"unknown rule field type {rule_field.type!r}")
    _FIELDS[rule_field.name] = rule_field


def rule_fields() -> dict[str, RuleField]:
    from core.capabilities import capabilities, resolve

    fields = dict(_FIELDS)
    for capability in capabilities():
        if capability.rule_fields:
            for rule_field in resolve(capability.rule_fields)():
                if rule_field.type not in OPERATORS:
                    raise ValueError(f"unknown rule field type {rule_field.type!r}")
                fields[rule_field.name] = rule_field
    return fields


# --- building Q objects ------------------------------------------------------------
def _compare(column: str, operator: str, value: Any) -> Q:
    if operator == "eq":
        return Q(**{column: value})
    if operator == "ne":
        return ~Q(**{column: value})
    if operator == "in":
        return Q(**{f"{column}__in": value})
    if operator == "not_in":
        return ~Q(**{f"{column}__in": value})
    if operator in ("gt", "gte", "lt", "lte"):
        return Q(**{f"{column}__{operator}": value})
    if operator == "between":
        return Q(**{f"{column}__gte": value[0], f"{column}__lte": value[1]})
    if operator == "is":
        return Q(**{column: value})
    raise ValueError(operator)


def column_field(
    *, name: str, label: str, type: str, column: str, help: str = "", choices=None
) -> RuleField:
    """A field that is a column of Customer (text comparisons ignore case)."""

    def to_q(operator: str, value: Any, context: RuleContext) -> Q:
        if type == "text":
            if operator in ("eq", "ne"):
                q = Q(**{f"{column}__iexact": value})
                return q if operator == "eq" else ~q
            any_of = Q()
            for v in value:
                any_of |= Q(**{f"{column}__iexact": v})
            return any_of if operator == "in" else ~any_of
        return _compare(column, operator, value)

    return RuleField(name=name, label=label, type=type, to_q=to_q, help=help, choices=choices)


def days_ago_field(*, name: str, label: str, column: str, help: str = "") -> RuleField:
    def to_q(operator: str, value: Any, context: RuleContext) -> Q:
        if operator == "never":
            return Q(**{f"{column}__isnull": True})
        # the reference day counts fully: "within 30 days" of 30 June includes 31 May
        try:
            day = context.reference_date + dt.timedelta(days=1) - dt.timedelta(days=int(value))
        except OverflowError:
            # before year 1 (a reference date near it, or a rule stored before the bound)
            day = dt.date.min
        boundary = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
        if operator == "within":
            return Q(**{f"{column}__gte": boundary})
        return Q(**{f"{column}__lt": boundary})

    return RuleField(name=name, label=label, type="days_ago", to_q=to_q, help=help)


def related_value_field(
    *,
    name: str,
    label: str,
    type: str,
    queryset: Callable[[], QuerySet],
    column: str,
    customer_column: str = "customer_id",
    help: str = "",
    choices: Callable[[], list[tuple[str, str]]] | None = None,
    group: str = "Predictions",
) -> RuleField:
    """A field held in another table keyed by customer (for example predictions).

    `queryset()` returns the current rows (say, the live prediction run's, from
    the scoped manager); the condition keeps customers with a matching row.
    """

    def to_q(operator: str, value: Any, context: RuleContext) -> Q:
        rows = queryset().filter(_compare(column, operator, value))
        return Q(pk__in=rows.values(customer_column))

    return RuleField(
        name=name, label=label, type=type, to_q=to_q, help=help, choices=choices, group=group
    )


def _segment_q(operator: str, value: Any, context: RuleContext) -> Q:
    from segmentation.models import SegmentMembership

    if context.live_run_id is None:
        members = Q(pk__in=[])
    else:
        members = Q(
            pk__in=SegmentMembership.objects.filter(
                run_id=context.live_run_id, segment_id__in=value
            ).values("customer_id")
        )
    return members if operator == "in" else ~members


def _segment_choices() -> list[tuple[str, str]]:
    from segmentation.models import Segment, SegmentKind

    segments = Segment.objects.filter(
        is_active=True, kind__in=[SegmentKind.CLUSTER, SegmentKind.RFM]
    ).order_by("kind", "-size")
    return [(str(s.pk), f"{s.name} ({s.get_kind_display().lower()})") for s in segments]


def _country_choices() -> list[tuple[str, str]]:
    from customers.models import Customer

    values = (
        Customer.objects.filter(erased_at__isnull=True)
        .exclude(country="")
        .values_list("country", flat=True)
        .distinct()
        .order_by("country")[:300]
    )
    return [(v, v) for v in values if v]


for _field in (
    column_field(
        name="country",
        label="Country",
        type="text",
        column="country",
        help="As stored on the customer, for example 'United Kingdom' or 'DE'.",
    ),
    column_field(name="region", label="Region", type="text", column="region"),
    column_field(name="city", label="City", type="text", column="city"),
    column_field(name="accepts_email", label="Accepts email", type="bool", column="accepts_email"),
    column_field(name="accepts_sms", label="Accepts SMS", type="bool", column="accepts_sms"),
    column_field(
        name="orders_count", label="Number of orders", type="number", column="orders_count"
    ),
    column_field(
        name="total_spent",
        label="Total spent",
        type="number",
        column="total_spent",
        help="Net of returns, in the organisation's currency.",
    ),
    days_ago_field(name="last_order", label="Last order", column="last_order_at"),
    days_ago_field(name="first_order", label="First order", column="first_order_at"),
    days_ago_field(name="signed_up", label="Signed up", column="signup_at"),
    RuleField(
        name="segment",
        label="Segment",
        type="segment",
        to_q=_segment_q,
        choices=_segment_choices,
        help="Membership of a segment of the live segmentation run.",
        group="Segments",
    ),
):
    register_rule_field(_field)

COUNTRY_CHOICES = _country_choices  # the builder offers these as suggestions


# --- validation ----------------------------------------------------------------------
def _fail(path: str, message: str) -> ApplicationError:
    return ApplicationError(
        f"Condition {path}: {message}", {"condition": path}, code="invalid_rule"
    )


def _shown(raw: Any, limit: int = 40) -> str:
    text = str(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(raw: Any, path: str, label: str = "", maximum: Decimal | None = MAX_NUMBER) -> Decimal:
    try:
        number = Decimal(str(raw).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise _fail(path, f"'{_shown(raw)}' is not a number.") from None
    if not number.is_finite():
        raise _fail(path, f"'{_shown(raw)}' is not a number.")
    if maximum is not None and abs(number) >= maximum:
        prefix = f"{label}: " if label else ""
        raise _fail(path, f"{prefix}'{_shown(raw)}' is too large (below {maximum:,.0f}).")
    return number


def _as_list(raw: Any) -> list:
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, (list, tuple)):
        return list(raw)
    return [raw]


def _clean_value(rule_field: RuleField, operator: str, raw: Any, path: str) -> Any:
    kind = rule_field.type
    label = rule_field.label[:1].lower() + rule_field.label[1:]
    if kind == "number":
        if operator == "between":
            parts = _as_list(raw)
            if len(parts) != 2:
                raise _fail(path, "'between' needs two numbers, the lowest first.")
            low, high = (_number(p, path, label) for p in parts)
            if low > high:
                raise _fail(path, f"{low} is more than {high}; give the lowest first.")
            return [low, high]
        return _number(raw, path, label)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise _fail(path, f"'{raw}' is not yes or no.")
    if kind == "days_ago":
        if operator == "never":
            return None
        days = _number(raw, path, label, maximum=None)
        if days < 0 or days != days.to_integral_value():
            raise _fail(path, "days must be a whole number, zero or more.")
        if days > MAX_DAYS:
            raise _fail(
                path,
                f"{label}: at most {MAX_DAYS:,} days (100 years); '{_shown(raw)}' is too many.",
            )
        return int(days)
    if kind == "text":
        if operator in ("eq", "ne"):
            text = str(raw if raw is not None else "").strip()
            if not text:
                raise _fail(path, "give a value.")
            return text
        values = [str(v).strip() for v in _as_list(raw) if str(v).strip()]
        if not values:
            raise _fail(path, "give at least one value.")
        return values
    if kind == "choice":
        values = [str(v) for v in _as_list(raw) if str(v).strip()]
        if not values:
            raise _fail(path, "choose at least one value.")
        if rule_field.choices is not None:
            allowed = {c for c, _ in rule_field.choices()}
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise _fail(path, f"unknown value(s): {', '.join(unknown)}.")
        return values
    if kind == "segment":
        from segmentation.models import Segment, SegmentKind

        try:
            ids = sorted({int(v) for v in _as_list(raw)})
        except (TypeError, ValueError):
            raise _fail(path, "segments are given by their ids.") from None
        if not ids:
            raise _fail(path, "choose at least one segment.")
        # an id no database column can hold names no segment (and would overflow the query)
        too_big = [str(i) for i in ids if not 0 < i < 2**63]
        if too_big:
            raise _fail(path, f"no segment with id {_shown(', '.join(too_big))}.")
        # the scoped manager: another organisation's ids are simply unknown
        found = set(
            Segment.objects.filter(
                pk__in=ids, kind__in=[SegmentKind.CLUSTER, SegmentKind.RFM]
            ).values_list("pk", flat=True)
        )
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise _fail(
                path,
                f"no segment found by machine learning or RFM with id {', '.join(missing)} "
                "(rules cannot refer to other rules).",
            )
        return ids
    raise _fail(path, f"unsupported field type {kind}.")


@dataclass
class _Counter:
    conditions: int = 0
    fields: set[str] = field(default_factory=set)


def rule_clean(rule: Any) -> dict:
    """Check a rule and return its canonical JSON; ApplicationError names the fault."""
    if not isinstance(rule, dict):
        raise ApplicationError("A rule must be an object with 'op' and 'conditions'.")
    counter = _Counter()
    cleaned = _clean_group(rule, "1", 1, counter, rule_fields())
    if counter.conditions == 0:
        raise ApplicationError("Add at least one condition.", code="invalid_rule")
    return _jsonable(cleaned)


def _clean_group(
    group: dict, path: str, depth: int, counter: _Counter, fields: dict[str, RuleField]
) -> dict:
    if depth > MAX_DEPTH:
        raise _fail(path, f"groups may be nested at most {MAX_DEPTH} deep.")
    op = str(group.get("op", "and")).lower()
    if op not in ("and", "or"):
        raise _fail(path, f"'{op}' must be 'and' or 'or'.")
    conditions = group.get("conditions")
    if not isinstance(conditions, list):
        raise _fail(path, "'conditions' must be a list.")
    out = []
    for i, item in enumerate(conditions, start=1):
        sub = f"{path}.{i}"
        if not isinstance(item, dict):
            raise _fail(sub, "must be an object.")
        if "conditions" in item:
            child = _clean_group(item, sub, depth + 1, counter, fields)
            if child["conditions"]:
                out.append(child)
            continue
        counter.conditions += 1
        if counter.conditions > MAX_CONDITIONS:
            raise _fail(sub, f"a rule may have at most {MAX_CONDITIONS} conditions.")
        name = item.get("field")
        if not isinstance(name, str) or name not in fields:
            raise _fail(sub, f"unknown field '{name}'. Known fields: {', '.join(sorted(fields))}.")
        rule_field = fields[name]
        operator = item.get("operator")
        if not isinstance(operator, str) or operator not in rule_field.operators:
            raise _fail(
                sub,
                f"'{operator}' cannot be used with {rule_field.label.lower()}; "
                f"use one of {', '.join(rule_field.operators)}.",
            )
        value = _clean_value(rule_field, operator, item.get("value"), sub)
        counter.fields.add(name)
        out.append({"field": name, "operator": operator, "value": value})
    return {"op": op, "conditions": out}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --- evaluation ----------------------------------------------------------------------
def rule_context() -> RuleContext:
    from segmentation.models import SegmentationRun

    from .segments import latest_data_date

    live = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    return RuleContext(reference_date=latest_data_date() or timezone.now().date(), live_run_id=live)


def rule_to_q(rule: dict, context: RuleContext) -> Q:
    fields = rule_fields()
    return _group_q(rule, context, fields)


def _group_q(group: dict, context: RuleContext, fields: dict) -> Q:
    combined: Q | None = None
    for item in group.get("conditions", []):
        if "conditions" in item:
            q = _group_q(item, context, fields)
        else:
            rule_field = fields[item["field"]]
            value = item.get("value")
            if rule_field.type == "number":
                value = (
                    [Decimal(str(v)) for v in value]
                    if isinstance(value, list)
                    else Decimal(str(value))
                )
            q = rule_field.to_q(item["operator"], value, context)
        if combined is None:
            combined = q
        elif group.get("op") == "or":
            combined |= q
        else:
            combined &= q
    return combined if combined is not None else Q()


def rule_customers(rule: dict, *, context: RuleContext | None = None) -> QuerySet:
    """The organisation's (non-erased) customers that match `rule` right now."""
    from customers.models import Customer

    context = context or rule_context()
    return Customer.objects.filter(erased_at__isnull=True).filter(rule_to_q(rule, context))


def rule_preview(*, rule: Any) -> dict:
    """Size of a rule before saving it: {"size", "total", "share"}."""
    from customers.models import Customer

    cleaned = rule_clean(rule)
    context = rule_context()
    size = rule_customers(cleaned, context=context).count()
    total = Customer.objects.filter(erased_at__isnull=True).count()
    return {
        "size": size,
        "total": total,
        "share": size / total if total else 0.0,
        "reference_date": context.reference_date.isoformat(),
        "rule": cleaned,
    }


def rule_describe(rule: dict) -> str:
    """The rule in words, for the segment page: "Country is United Kingdom and …"."""
    fields = rule_fields()
    return _describe_group(rule, fields, top=True)


def _describe_group(group: dict, fields: dict, *, top: bool = False) -> str:
    joiner = " and " if group.get("op") == "and" else " or "
    parts = []
    for item in group.get("conditions", []):
        if "conditions" in item:
            parts.append(f"({_describe_group(item, fields)})")
            continue
        rule_field = fields.get(item["field"])
        if rule_field is None:
            parts.append(f"{item['field']} (no longer available)")
            continue
        parts.append(_describe_condition(rule_field, item["operator"], item.get("value")))
    text = joiner.join(parts)
    return text[:1].upper() + text[1:] if top else text


def _describe_condition(rule_field: RuleField, operator: str, value: Any) -> str:
    label = rule_field.label[:1].lower() + rule_field.label[1:]
    if rule_field.type == "days_ago":
        if operator == "never":
            return f"{label}: never"
        return f"{label} {'within the last' if operator == 'within' else 'more than'} {value} days{' ago' if operator == 'more_than' else ''}"
    if rule_field.type == "bool":
        return f"{label}: {'yes' if value else 'no'}"
    if rule_field.type == "segment":
        names = dict(_segment_choices())
        segments = [names.get(str(v), f"segment {v}") for v in value]
        return f"{'in' if operator == 'in' else 'not in'} {' or '.join(segments)}"
    words = rule_field.operators.get(operator, operator)
    if isinstance(value, list):
        shown = (
            " and ".join(str(v) for v in value)
            if operator == "between"
            else ", ".join(str(v) for v in value)
        )
    else:
        shown = str(value)
    return f"{label} {words} {shown}"


# --- rule segments -------------------------------------------------------------------
def _unique_rule_key(name: str) -> str:
    from segmentation.models import Segment

    base = f"rule-{slugify(name)[:60] or 'segment'}"
    key, n = base, 2
    while Segment.objects.filter(key=key).exists():
        key, n = f"{base}-{n}", n + 1
    return key


def rule_segment_create(*, organization, name: str, rule: Any, user=None, description: str = ""):
    scope_check(organization=organization)
    from segmentation.models import Segment, SegmentKind

    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the segment a name.", {"field": "name"})
    cleaned = rule_clean(rule)
    with transaction.atomic():
        segment = Segment.objects.create(
            organization=organization,
            kind=SegmentKind.RULE,
            name=name[:120],
            key=_unique_rule_key(name),
            description=description,
            rule=cleaned,
            # an API key acts without a user account
            created_by=user if getattr(user, "pk", None) is not None else None,
        )
        rule_segment_refresh(segment=segment)
    log.info("segments.rule_created segment_id=%s", segment.pk)
    return segment


def rule_segment_update(*, segment, name: str | None = None, rule: Any = None, description=None):
    from segmentation.models import SegmentKind

    if segment.kind != SegmentKind.RULE:
        raise ApplicationError("Only rule segments can be edited this way.")
    if name is not None:
        name = name.strip()
        if not name:
            raise ApplicationError("Give the segment a name.", {"field": "name"})
        segment.name = name[:120]
    if description is not None:
        segment.description = description
    if rule is not None:
        segment.rule = rule_clean(rule)
    with transaction.atomic():
        segment.save()
        rule_segment_refresh(segment=segment)
    return segment


def rule_segment_delete(*, segment) -> None:
    from segmentation.models import SegmentKind

    if segment.kind != SegmentKind.RULE:
        raise ApplicationError("Segments found by the segmentation cannot be deleted.")
    segment.delete()


def rule_segment_refresh(*, segment, context: RuleContext | None = None) -> int:
    """Recompute one rule segment now: its size and its members in the live run."""
    from segmentation.models import Segment, SegmentMembership

    context = context or rule_context()
    ids = list(
        rule_customers(segment.rule, context=context).order_by().values_list("pk", flat=True)
    )
    with transaction.atomic():
        if context.live_run_id is not None:
            SegmentMembership.objects.filter(run_id=context.live_run_id, segment=segment).delete()
            write_memberships(
                organization_id=segment.organization_id,
                run_id=context.live_run_id,
                rows=((segment.pk, cid) for cid in ids),
            )
        Segment.objects.filter(pk=segment.pk).update(size=len(ids), is_active=True)
    segment.size = len(ids)
    return len(ids)


def rule_segments_refresh_all(*, context: RuleContext | None = None) -> dict[int, list[int]]:
    """Members of every rule segment right now ({segment_id: [customer ids]})."""
    from segmentation.models import Segment, SegmentKind

    context = context or rule_context()
    out: dict[int, list[int]] = {}
    for segment in Segment.objects.filter(kind=SegmentKind.RULE):
        try:
            rule = rule_clean(segment.rule)
        except ApplicationError as exc:
            # a field that went away (say predictions were switched off): keep the
            # segment, report it, and count nobody rather than failing the run
            log.warning("segments.rule_invalid segment_id=%s reason=%s", segment.pk, exc.message)
            out[segment.pk] = []
            continue
        out[segment.pk] = list(
            rule_customers(rule, context=context).order_by().values_list("pk", flat=True)
        )
    return out


def write_memberships(
    *,
    organization_id: int,
    run_id: int,
    rows: Iterable[tuple[int, int]] | None = None,
    segment_ids: np.ndarray | None = None,
    customer_ids: np.ndarray | None = None,
) -> int:
    """Insert (segment_id, customer_id) rows for a run; returns the count.

    The rows come as an iterable of pairs or, cheaper, as two equally long
    arrays (`segment_ids`, `customer_ids`). They go through `services.bulk`
    (COPY into a staging table and one INSERT … SELECT on PostgreSQL, multi-row
    INSERTs on SQLite): no model instance, no per-row Python on PostgreSQL. The
    organisation is written explicitly, as raw SQL must.
    """
    from segmentation.models import SegmentMembership

    from .bulk import bulk_insert

    if rows is not None:
        pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
        segment_ids, customer_ids = pairs[:, 0], pairs[:, 1]
    if segment_ids is None or customer_ids is None:
        raise ValueError("write_memberships needs rows or segment_ids and customer_ids")
    return bulk_insert(
        SegmentMembership,
        fixed={"organization_id": organization_id, "run_id": run_id},
        columns={
            "segment_id": np.asarray(segment_ids, dtype=np.int64),
            "customer_id": np.asarray(customer_ids, dtype=np.int64),
        },
    )
