"""The fairness check of an audience: the four-fifths rule on sensitive attributes.

CONTRACT.md, "Recommendations and audiences", "Fairness". For every sensitive
attribute the business holds — `gender`, `birth_date` (as age groups <25, 25–34,
35–44, 45–54, 55–64, 65+, ages counted in the organisation's time zone today) and
every custom attribute that `core.sensitive` flags, the owner's marked ones
included — the check gives one row per group:

    {"attribute", "group", "share_in_audience", "share_in_base", "ratio", "warning"}

- the base is every customer not erased; `share_in_base` is the group's share of
  it, `share_in_audience` its share of the audience (null for an empty audience);
- the group's selection rate is the share of its customers who are in the
  audience; `ratio` is that rate divided by the highest rate among the known
  groups (null when nobody is selected: 0/0). The "unknown" group (blank values)
  is not a group of people sharing a trait, so it is never the reference and
  never warns;
- `warning` is a plain sentence when `ratio` < 0.8 and the group has at least 30
  customers, else null;
- an attribute nobody holds (every value blank) is left out.

Group labels are normalised lightly: surrounding spaces are dropped, runs of spaces
joined and case ignored when grouping ("Female", " female" are one group), and the
group is shown with its most common spelling; "null", "n/a" and "unknown" written
out count as blank. A custom attribute whose name says
age or birth and whose values are ages, birth years or dates is grouped by age like
`birth_date`; any other attribute with more than `MAX_GROUPS` values keeps its
largest groups and joins the rest as "other values".

Speed: one pass over the customers (on PostgreSQL one aggregate returning each
column as an array, the custom attributes read as text by the database; a
`values_list` pass elsewhere), then numpy on group codes: values are factorised
first, so normalising and parsing touch each distinct value once, not each
customer.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.sensitive import ALWAYS_SENSITIVE, is_sensitive, name_words

FOUR_FIFTHS = 0.8
MIN_GROUP = 30  # smaller groups never warn: their rate is mostly chance
MAX_GROUPS = 20  # per custom attribute; the rest are joined as "other values"
UNKNOWN = "unknown"
OTHER = "other values"
AGE_BANDS = ("<25", "25–34", "35–44", "45–54", "55–64", "65+")
_AGE_EDGES = np.array([25, 35, 45, 55, 65])
MAX_AGE = 120  # older (or negative) ages are typing mistakes: unknown
_SPACES = re.compile(r"\s+")

__all__ = ["AGE_BANDS", "Column", "fairness_check", "fairness_rows"]


@dataclass(frozen=True)
class Column:
    """One sensitive attribute as group codes: `codes[i]` indexes `labels`, -1 is
    unknown. `kind` is "age", "gender" or "custom" (it words the warning)."""

    attribute: str
    codes: np.ndarray
    labels: Sequence[str]
    kind: str = "custom"


# --- grouping (no ORM: arrays in, codes out) -----------------------------------------
# written-out blanks (SQLite also reads a JSON null as the text "null")
_BLANK_WORDS = frozenset({"", "null", "n/a", "unknown"})


def _blank(value) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value).strip().casefold() in _BLANK_WORDS


def _readable(spelling: str) -> str:
    return spelling[:1].upper() + spelling[1:] if spelling.islower() else spelling


def group_codes(values: Sequence | np.ndarray, *, max_groups: int | None = None) -> tuple:
    """Category codes for raw values, grouped case- and space-insensitively.

    Returns (codes, labels): -1 for blank values; labels are each group's most
    common spelling. With `max_groups`, groups beyond the largest ones become one
    "other values" group (the last label)."""
    raw_codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    counts = np.bincount(raw_codes[raw_codes >= 0], minlength=len(uniques))
    key_of: list[str | None] = []
    for value in uniques:
        key_of.append(None if _blank(value) else _SPACES.sub(" ", str(value).strip()).casefold())
    keys = sorted({k for k in key_of if k is not None})
    index = {k: i for i, k in enumerate(keys)}
    mapping = np.array([-1 if k is None else index[k] for k in key_of] + [-1], dtype=np.int64)
    codes = mapping[raw_codes]  # raw code -1 (NaN/None) picks the trailing -1
    # label: the most common spelling of each group
    best: dict[int, tuple[int, str]] = {}
    for raw, value in enumerate(uniques):
        group = int(mapping[raw])
        if group < 0:
            continue
        spelling = _SPACES.sub(" ", str(value).strip())
        if group not in best or counts[raw] > best[group][0]:
            best[group] = (int(counts[raw]), spelling)
    labels = [_readable(best[i][1]) for i in range(len(keys))]
    if max_groups is not None and len(labels) > max_groups:
        sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
        keep = np.argsort(-sizes, kind="stable")[: max_groups - 1]
        remap = np.full(len(labels) + 1, max_groups - 1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        remap[-1] = -1
        codes = remap[codes]
        labels = [labels[i] for i in keep] + [OTHER]
    return codes, labels


def age_band_codes(ages: np.ndarray) -> np.ndarray:
    """Age (float, NaN unknown) -> index into AGE_BANDS, -1 unknown."""
    ages = np.asarray(ages, dtype=np.float64)
    known = ~np.isnan(ages) & (ages >= 0) & (ages <= MAX_AGE)
    codes = np.full(len(ages), -1, dtype=np.int64)
    codes[known] = np.searchsorted(_AGE_EDGES, ages[known], side="right")
    return codes


def _age_on(born: dt.date, today: dt.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def ages_from_dates(values: Sequence | np.ndarray, today: dt.date) -> np.ndarray:
    """Birth dates ("YYYY-MM-DD" text or dates, blanks allowed) -> ages today."""
    raw_codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    ages = []
    for value in uniques:
        born = value if isinstance(value, dt.date) else _parse_date(str(value).strip())
        ages.append(np.nan if born is None else float(_age_on(born, today)))
    return np.append(np.asarray(ages, dtype=np.float64), np.nan)[raw_codes]


def _custom_ages(name: str, values: Sequence | np.ndarray, today: dt.date) -> np.ndarray | None:
    """Ages from an attribute named for age or birth (ages, birth years or dates),
    or None when its values are not those (nine in ten known values must be)."""
    words = set(name_words(name))
    if not words & {"age", "birth", "born", "dob"}:
        return None
    raw_codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    counts = np.bincount(raw_codes[raw_codes >= 0], minlength=len(uniques))
    ages = np.full(len(uniques) + 1, np.nan)
    known = read = 0
    for i, value in enumerate(uniques):
        if _blank(value):
            continue
        known += counts[i]
        text = str(value).strip()
        age = None
        try:
            number = float(text)
        except ValueError:
            born = _parse_date(text)
            age = None if born is None else _age_on(born, today)
        else:
            if "age" in words and 0 <= number <= MAX_AGE:
                age = int(number)
            elif 1900 <= number <= today.year and number == int(number):
                age = today.year - int(number)  # a birth year: age reached this year
        if age is not None:
            ages[i] = age
            read += counts[i]
    if not known or read < 0.9 * known:
        return None
    return ages[raw_codes]


# --- the check -------------------------------------------------------------------------
def _who(column: Column, label: str) -> str:
    if column.kind == "age":
        return "Customers aged under 25" if label == "<25" else f"Customers aged {label}"
    attribute = " ".join(name_words(column.attribute)) or column.attribute
    return f"Customers whose {attribute} is “{label}”"


def _reference(column: Column, label: str) -> str:
    if column.kind == "age" and label == "<25":
        return "under 25"
    return label


def fairness_rows(columns: Iterable[Column], in_audience: np.ndarray) -> list[dict]:
    """The contract's rows for columns of group codes over the same customers;
    `in_audience[i]` says whether customer i is in the audience."""
    in_audience = np.asarray(in_audience, dtype=bool)
    audience_size = int(in_audience.sum())
    base_size = len(in_audience)
    rows: list[dict] = []
    for column in columns:
        codes = np.asarray(column.codes, dtype=np.int64)
        n_groups = len(column.labels)
        known = codes >= 0
        if not known.any():
            continue  # nobody holds it
        slots = np.where(known, codes, n_groups)  # unknown goes last
        base = np.bincount(slots, minlength=n_groups + 1)
        picked = np.bincount(slots[in_audience], minlength=n_groups + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(base > 0, picked / np.maximum(base, 1), 0.0)
        best_group = int(np.argmax(rate[:n_groups]))
        best_rate = float(rate[best_group])
        labels = [*column.labels, UNKNOWN]
        for group in range(n_groups + 1):
            if base[group] == 0:
                continue  # an age band nobody is in
            ratio = float(rate[group]) / best_rate if best_rate > 0 else None
            warning = None
            if (
                ratio is not None
                and group < n_groups
                and ratio < FOUR_FIFTHS
                and base[group] >= MIN_GROUP
            ):
                shown = np.floor(ratio * 100) / 100  # 0.799 reads 0.79×, not 0.80×
                warning = (
                    f"{_who(column, labels[group])} are picked at {shown:.2f}× the rate of "
                    f"the best-picked group ({_reference(column, labels[best_group])}): "
                    "check this audience does not leave them out unfairly."
                )
            rows.append(
                {
                    "attribute": column.attribute,
                    "group": labels[group],
                    "share_in_audience": round(int(picked[group]) / audience_size, 4)
                    if audience_size
                    else None,
                    "share_in_base": round(int(base[group]) / base_size, 4),
                    "ratio": None if ratio is None else round(ratio, 3),
                    "warning": warning,
                }
            )
    return rows


# --- loading ---------------------------------------------------------------------------
def _today(organization) -> dt.date:
    from django.utils import timezone

    zone: dt.tzinfo
    try:
        zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    return timezone.now().astimezone(zone).date()


def attribute_keys(queryset) -> list[str]:
    """Every custom attribute name held by the customers of `queryset`."""
    from django.db import connections
    from django.db.models import CharField, F, Func

    held = queryset.exclude(attributes={}).order_by()
    if connections[queryset.db].vendor == "postgresql":
        # the database lists the keys: no JSON crosses to Python
        keys = held.annotate(
            key=Func(F("attributes"), function="jsonb_object_keys", output_field=CharField())
        ).values_list("key", flat=True)
        return sorted(set(keys.distinct()))
    found: set[str] = set()
    for attributes in held.values_list("attributes", flat=True).iterator(chunk_size=20_000):
        if isinstance(attributes, dict):
            found.update(attributes)
    return sorted(found)


def held_attribute_keys(base, *, organization) -> list[str]:
    """`attribute_keys(base)`, cached per organisation until a customer is written
    (the cache key carries the newest `updated_at`, read from its index): finding
    the keys reads every customer's attributes."""
    from django.core.cache import cache

    from customers.sampling import customers_version

    version = customers_version(organization.pk)
    if version == "none":
        return []
    key = f"audiences:attribute-keys:org{organization.pk}:{version}"
    keys = cache.get(key)
    if keys is None:
        keys = attribute_keys(base)
        cache.set(key, keys, 3600)
    return keys


def sensitive_attribute_keys(keys: Iterable[str], marked: Iterable[str]) -> list[str]:
    """The custom attributes to check: those the contract or the owner calls
    sensitive (the canonical `gender` and `birth_date` are checked as columns)."""
    marked = list(marked or [])
    return [
        k for k in keys if k.strip().lower() not in ALWAYS_SENSITIVE and is_sensitive(k, marked)
    ]


def _customer_columns(base, custom: list[str]) -> list[list]:
    """[ids, genders, birth dates as text, *custom attributes as text], one list per
    column over the same customers. On PostgreSQL one aggregate returns each column
    as one array (parsed in C: no Python work per customer); elsewhere (SQLite in
    development and tests) a values_list pass."""
    from django.db import connections
    from django.db.models import CharField
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Cast

    born = Cast("birth_date", CharField())
    texts = [KeyTextTransform(key, "attributes") for key in custom]
    base = base.order_by()
    if connections[base.db].vendor == "postgresql":
        from django.contrib.postgres.aggregates import ArrayAgg

        # the aggregates of one query see the rows in the same order, so the arrays
        # line up customer by customer
        named = {"c0": ArrayAgg("pk"), "c1": ArrayAgg("gender"), "c2": ArrayAgg(born)}
        named |= {f"c{i + 3}": ArrayAgg(text) for i, text in enumerate(texts)}
        found = base.aggregate(**named)
        return [found[f"c{i}"] or [] for i in range(len(named))]
    annotations = {f"a{i}": text for i, text in enumerate(texts)}
    rows = list(
        base.annotate(born=born, **annotations).values_list("pk", "gender", "born", *annotations)
    )
    if not rows:
        return [[] for _ in range(3 + len(custom))]
    return [list(column) for column in zip(*rows, strict=True)]


def _membership(pks: np.ndarray, member_ids) -> np.ndarray:
    """in_audience[i]: is customer pks[i] a member (ids outside the base ignored)."""
    if not isinstance(member_ids, list | tuple | np.ndarray):
        member_ids = list(member_ids)  # a queryset is read once, not item by item
    members = np.asarray(member_ids, dtype=np.int64).ravel()
    if not len(pks) or not len(members):
        return np.zeros(len(pks), dtype=bool)
    top = int(max(pks.max(), members.max()))
    if 0 <= members.min() and top < 64 * (len(pks) + len(members)):
        flags = np.zeros(top + 1, dtype=bool)  # a lookup table beats sorting
        flags[members] = True
        return flags[pks]
    return np.isin(pks, members)


def _sample_columns(base, *, organization, sample) -> tuple[list[str], list[list]]:
    """(custom attributes, `_customer_columns`) of a preview sample's customers, kept
    `customers.sampling.CACHE_SECONDS`: the builder previews an audience again at
    each change."""
    import hashlib

    marked = list(organization.sensitive_attributes or [])
    # a column the owner marks sensitive is checked from the next preview on
    marks = hashlib.sha256("\n".join(sorted(map(str, marked))).encode()).hexdigest()[:16]

    def read():
        in_sample = base.filter(sample.lookup("pk"))
        custom = sensitive_attribute_keys(attribute_keys(in_sample), marked)
        return (custom, _customer_columns(in_sample, custom))

    return sample.cached("audiences:sample-fairness", organization.pk, read, extra=marks)


def fairness_check(member_ids, *, organization, sample=None) -> list[dict]:
    """The fairness rows of an audience with these members (customer ids). With a
    `customers.sampling.CustomerSample` (the preview's estimate), the base is the
    customers of the sample: the shares and ratios are the sample's, and a group
    needs `MIN_GROUP` customers in the sample to warn."""
    from customers.models import Customer

    base = Customer.objects.filter(organization_id=organization.pk, erased_at__isnull=True)
    if sample is not None:
        custom, columns_raw = _sample_columns(base, organization=organization, sample=sample)
    else:
        held = held_attribute_keys(base, organization=organization)
        custom = sensitive_attribute_keys(held, organization.sensitive_attributes or [])
        columns_raw = _customer_columns(base, custom)
    if not len(columns_raw[0]):
        return []
    pks = np.asarray(columns_raw[0], dtype=np.int64)
    in_audience = _membership(pks, member_ids)
    today = _today(organization)

    columns: list[Column] = []
    codes, labels = group_codes(columns_raw[1])
    columns.append(Column("gender", codes, labels, kind="gender"))
    columns.append(
        Column(
            "birth_date", age_band_codes(ages_from_dates(columns_raw[2], today)), AGE_BANDS, "age"
        )
    )
    for key, values in zip(custom, columns_raw[3:], strict=True):
        ages = _custom_ages(key, values, today)
        if ages is not None:
            columns.append(Column(key, age_band_codes(ages), AGE_BANDS, kind="age"))
        else:
            codes, labels = group_codes(values, max_groups=MAX_GROUPS)
            columns.append(Column(key, codes, labels))
    return fairness_rows(columns, in_audience)
