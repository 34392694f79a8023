"""Per-customer features for the audience models (response, lookalike, buy_category).

Pure numerical code: `audiences/ml.py` and `audiences/goals.py` read the frames
through `customers.history.History` and call these functions. Every customer may
have a cut-off of their own (the response model looks at each customer as they
were when the campaign reached them, so that what they did after it cannot leak
into the features); everything is computed with array operations over the whole
base, so 100,000 customers and a million order lines take a few seconds.

Three blocks of columns:
- profile: country (one-hot), gender (one-hot) and age from `birth_date` — the
  last two sensitive;
- custom columns imported into `Customer.attributes` (`attr:<key>` in the
  customers frame): numbers as they are, low-cardinality text one-hot; ids,
  emails, phone numbers, names and free text (mostly distinct values) skipped;
- behaviour up to the cut-off: orders, spend, average order, days since the last
  order, tenure, distinct products, and events of the most common types in the
  90 days before the cut-off.

Sensitive columns (`core.sensitive.is_sensitive`, with the owner's marked names)
are left out unless the definition says `use_sensitive`; `FeatureMatrix.excluded_sensitive`
names the source columns left out and `FeatureMatrix.readable` the columns used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.sensitive import is_sensitive, name_words

NS_PER_DAY = 86_400 * 10**9
EVENT_DAYS = 90
MAX_EVENT_TYPES = 10
MAX_LEVELS = 10  # one-hot columns per text column at most
MIN_LEVEL_SHARE = 0.01
# a text column with more distinct values than this (or mostly distinct values) is an
# identifier or free text, not a trait shared by customers
MAX_DISTINCT = 50

# words that make a custom column an identifier or contact detail, never a trait
IDENTITY_WORDS = frozenset(
    {
        "id",
        "uuid",
        "guid",
        "ref",
        "reference",
        "key",
        "email",
        "mail",
        "phone",
        "mobile",
        "name",
        "address",
        "street",
        "postcode",
        "zip",
        "url",
        "ip",
        "token",
        "password",
    }
)

# behaviour columns whose values are long-tailed: log-scaled for the linear model
SKEWED = ("orders", "spend", "avg_order_value", "distinct_products")


@dataclass
class FeatureMatrix:
    """Model columns for `customer_ids` (in that order), with readable names."""

    customer_ids: np.ndarray
    frame: pd.DataFrame  # one column per feature, NaN where unknown
    readable: dict[str, str]  # column -> plain name shown to the owner
    excluded_sensitive: list[str] = field(default_factory=list)  # source columns
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    @property
    def X(self) -> np.ndarray:
        return self.frame.to_numpy(dtype=np.float64)

    def feature_names(self) -> list[str]:
        return [self.readable.get(c, c) for c in self.frame.columns]

    def informative(self, rows: np.ndarray | None = None) -> list[str]:
        """Columns with at least two distinct known values (among `rows`): the rest
        carry nothing to learn from (and an all-missing column upsets the trees)."""
        frame = self.frame if rows is None else self.frame.iloc[rows]
        return [c for c in frame.columns if frame[c].nunique(dropna=True) >= 2]

    def select(self, columns: list[str]) -> FeatureMatrix:
        return FeatureMatrix(
            self.customer_ids,
            self.frame[columns],
            {c: self.readable[c] for c in columns if c in self.readable},
            list(self.excluded_sensitive),
            dict(self.skipped),
        )


def utc_ns(values) -> np.ndarray:
    """int64 UTC nanoseconds; NaT as INT64 min."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").asi8


def is_identity(name: str) -> bool:
    words = name_words(str(name).removeprefix("attr:"))
    return any(w in IDENTITY_WORDS for w in words)


def _looks_like_a_sequence(values: pd.Series) -> bool:
    """Whole numbers, each customer's different, packed in a range: a numbering."""
    numbers = values.dropna().astype("float64").to_numpy()
    if numbers.size < 20 or not np.all(numbers == np.round(numbers)):
        return False
    distinct = np.unique(numbers).size
    return distinct == numbers.size and numbers.max() - numbers.min() < 3 * numbers.size


def _levels(values: pd.Series) -> list[str]:
    counts = values.dropna().astype(str).str.strip()
    counts = counts[counts != ""].value_counts()
    total = max(int(counts.sum()), 1)
    keep = [str(k) for k, v in counts.items() if v / total >= MIN_LEVEL_SHARE]
    return keep[:MAX_LEVELS]


def _one_hot(out: dict, readable: dict, values: pd.Series, column: str, label: str) -> None:
    text = (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v).strip())
    )
    for level in _levels(values):
        name = f"{column}={level}"
        out[name] = (text == level).to_numpy(dtype=np.float64)
        readable[name] = f"{label}: {level}"


def profile_and_attributes(
    customers: pd.DataFrame,
    *,
    cutoff_ns: np.ndarray,
    marked: list[str] | tuple[str, ...] = (),
    use_sensitive: bool = False,
) -> FeatureMatrix:
    """Profile and custom-column features of the customers frame (`History.customers()`
    shape: `customer_id`, `birth_date`, `gender`, `country`, `attr:<key>` ...), in
    its row order. `cutoff_ns` (one per row) dates the age."""
    out: dict[str, np.ndarray] = {}
    readable: dict[str, str] = {}
    excluded: list[str] = []
    skipped: dict[str, str] = {}
    n = len(customers)

    def sensitive(source: str) -> bool:
        if is_sensitive(source, marked) and not use_sensitive:
            if source not in excluded:
                excluded.append(source)
            return True
        return False

    if "country" in customers and customers["country"].notna().any():
        if not sensitive("country"):
            _one_hot(out, readable, customers["country"], "country", "Country")
    if "gender" in customers and customers["gender"].notna().any():
        if not sensitive("gender"):
            _one_hot(out, readable, customers["gender"], "gender", "Gender")
    if "birth_date" in customers and customers["birth_date"].notna().any():
        if not sensitive("birth_date"):
            born = utc_ns(pd.to_datetime(customers["birth_date"], errors="coerce"))
            age = (cutoff_ns - born) / (365.25 * NS_PER_DAY)
            age = np.where(born == np.iinfo(np.int64).min, np.nan, age)
            out["age"] = np.where((age >= 0) & (age < 120), age, np.nan)
            readable["age"] = "Age (from birth date)"
    for column in customers.columns:
        if not str(column).startswith("attr:"):
            continue
        key = str(column).removeprefix("attr:")
        values = customers[column]
        present = int(values.notna().sum())
        if present == 0:
            skipped[key] = "no values"
            continue
        # sensitive first, so that the owner sees every sensitive column left out
        if sensitive(key):
            continue
        if is_identity(key):
            skipped[key] = "an identifier or contact detail"
            continue
        numeric = pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
            values.dtype
        )
        if numeric and _looks_like_a_sequence(values):
            skipped[key] = "an identifier (a distinct whole number each)"
            continue
        if not numeric:
            n_levels = values.dropna().astype(str).nunique()
            if n_levels > MAX_DISTINCT or (present >= 20 and n_levels > 0.5 * present):
                skipped[key] = "too many distinct values (free text or an identifier)"
                continue
        if numeric:
            numbers = values.astype("float64").to_numpy()
            if np.nanstd(numbers) <= 0:
                skipped[key] = "the same value for everyone"
                continue
            out[f"attr:{key}"] = numbers
            readable[f"attr:{key}"] = key
        else:
            _one_hot(out, readable, values, f"attr:{key}", key)
    ids = customers["customer_id"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame(out, index=pd.RangeIndex(n)) if out else pd.DataFrame(index=range(n))
    return FeatureMatrix(ids, frame, readable, excluded, skipped)


def behaviour(
    customer_ids: np.ndarray,
    cutoff_ns: np.ndarray,
    *,
    lines: pd.DataFrame | None,
    events: pd.DataFrame | None,
    signup_ns: np.ndarray | None = None,
    event_types: list[str] | None = None,
) -> FeatureMatrix:
    """Behaviour of each customer strictly before their own cut-off.

    `customer_ids` must be sorted ascending (the customers frame's order is);
    `lines` is `History.order_lines()` (netted amounts), `events` is
    `History.events()`. `event_types` fixes the event columns (so that training
    and scoring frames agree); by default the most common types.
    """
    n = len(customer_ids)
    out: dict[str, np.ndarray] = {}
    readable: dict[str, str] = {}

    def rows_of(ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(customer_ids, ids)
        pos[pos >= n] = 0
        return np.where(customer_ids[pos] == ids, pos, -1) if n else np.full(len(ids), -1)

    first_ns = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if lines is not None and len(lines):
        row = rows_of(lines["customer_id"].to_numpy(dtype=np.int64))
        t = utc_ns(lines["ordered_at"])
        keep = row >= 0
        keep[keep] = t[keep] < cutoff_ns[row[keep]]
        row, t = row[keep], t[keep]
        amount = lines["amount"].to_numpy(dtype=np.float64)[keep]
        order = lines["order_id"].to_numpy(dtype=np.int64)[keep]
        product = lines["product_id"].to_numpy(dtype=np.int64)[keep]
        spend = np.bincount(row, weights=amount, minlength=n)
        # one entry per order: its row, time and total (a return's total is negative)
        codes, first = np.unique(order, return_index=True)
        total = np.bincount(np.searchsorted(codes, order), weights=amount, minlength=len(codes))
        o_row, o_t = row[first], t[first]
        bought = total > 0
        orders = np.bincount(o_row[bought], minlength=n).astype(np.float64)
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, o_row[bought], o_t[bought])
        np.minimum.at(first_ns, o_row[bought], o_t[bought])
        # distinct products per customer
        has = product >= 0
        pairs = np.unique(np.stack([row[has], product[has]], axis=1), axis=0) if has.any() else None
        distinct = (
            np.bincount(pairs[:, 0], minlength=n).astype(np.float64)
            if pairs is not None
            else np.zeros(n)
        )
    else:
        spend = np.zeros(n)
        orders = np.zeros(n)
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        distinct = np.zeros(n)
    has_order = orders > 0
    out["orders"] = orders
    out["spend"] = spend
    out["avg_order_value"] = np.where(has_order, spend / np.maximum(orders, 1), 0.0)
    out["days_since_last_order"] = np.where(has_order, (cutoff_ns - last) / NS_PER_DAY, np.nan)
    start = first_ns.copy()
    if signup_ns is not None:
        known = signup_ns != np.iinfo(np.int64).min
        start = np.where(known & (signup_ns < start), signup_ns, start)
    out["tenure_days"] = np.where(
        start < np.iinfo(np.int64).max, np.maximum(cutoff_ns - start, 0) / NS_PER_DAY, np.nan
    )
    out["distinct_products"] = distinct
    readable.update(
        {
            "orders": "Orders",
            "spend": "Total spend",
            "avg_order_value": "Average order value",
            "days_since_last_order": "Days since the last order",
            "tenure_days": "Days as a customer",
            "distinct_products": "Different products bought",
        }
    )
    if events is not None and len(events):
        types = events["type"].astype(object).to_numpy()
        if event_types is None:
            counts = pd.Series(types).value_counts()
            event_types = [str(t) for t in counts.index[:MAX_EVENT_TYPES]]
        row = rows_of(events["customer_id"].to_numpy(dtype=np.int64))
        t = utc_ns(events["occurred_at"])
        keep = row >= 0
        keep[keep] = (t[keep] < cutoff_ns[row[keep]]) & (
            t[keep] >= cutoff_ns[row[keep]] - EVENT_DAYS * NS_PER_DAY
        )
        for event_type in event_types:
            mask = keep & (types == event_type)
            name = f"events_90d={event_type}"
            out[name] = np.bincount(row[mask], minlength=n).astype(np.float64)
            readable[name] = f"'{event_type}' events in the last 90 days"
    elif event_types:
        for event_type in event_types:
            out[f"events_90d={event_type}"] = np.zeros(n)
            readable[f"events_90d={event_type}"] = f"'{event_type}' events in the last 90 days"
    return FeatureMatrix(customer_ids, pd.DataFrame(out), readable)


def combine(*parts: FeatureMatrix) -> FeatureMatrix:
    """Side-by-side blocks of the same customers (same order)."""
    frames = [p.frame.reset_index(drop=True) for p in parts]
    readable: dict[str, str] = {}
    excluded: list[str] = []
    skipped: dict[str, str] = {}
    for p in parts:
        readable.update(p.readable)
        excluded.extend(e for e in p.excluded_sensitive if e not in excluded)
        skipped.update(p.skipped)
    return FeatureMatrix(
        parts[0].customer_ids, pd.concat(frames, axis=1), readable, excluded, skipped
    )


def event_type_list(events: pd.DataFrame | None, *, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The most common event types (fixed once, for training and scoring alike)."""
    if events is None or not len(events):
        return []
    counts = pd.Series(events["type"].astype(object)).value_counts()
    return [str(t) for t in counts.index if str(t) not in leave_out][:MAX_EVENT_TYPES]
