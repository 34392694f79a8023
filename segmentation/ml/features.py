"""Per-customer features for segmentation, as of a cut-off.

Pure numerical code: the service layer loads order lines, customers and events
from the database into data frames and calls :func:`build_features`.

Everything is computed with array operations over the whole base (no Python
loop per customer), so 100,000 customers and 1,000,000 order lines take a few
seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 10**9
NS_PER_HOUR = 3_600 * 10**9

# Gender and age are left out of models unless the owner explicitly allows them:
# segments built on protected traits invite discriminatory targeting.
DEFAULT_SENSITIVE = frozenset({"gender", "birth_date", "age"})

# Columns of the customers frame that are not attributes to learn from.
STANDARD_CUSTOMER_COLUMNS = frozenset(
    {"customer_id", "signup_at", "birth_date", "gender", "country"}
)
IDENTITY_COLUMNS = frozenset(
    {
        "id",
        "external_id",
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "address",
        "street",
        "postcode",
        "zip",
        "city",
        "created_at",
        "updated_at",
        "organization",
        "organization_id",
    }
)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# kinds whose values are long-tailed counts, amounts or durations: these are
# winsorised and log-transformed before standardising.
SKEWED_KINDS = frozenset({"days", "count", "money", "units", "events"})

REQUIRED_LINE_COLUMNS = ("customer_id", "order_id", "ordered_at", "quantity", "amount")


@dataclass(frozen=True)
class FeatureInfo:
    """What a feature column means, for profiles, personas and the settings page."""

    name: str
    description: str
    # days | count | money | units | share | events | flag | years | number |
    # weekday | hour
    kind: str
    # core | category | channel | engagement | attribute | time
    block: str
    # the input column the feature comes from (matched against sensitive names)
    source: str
    in_model: bool = True
    label: str = ""  # e.g. the category name for "category:Garden"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "block": self.block,
            "source": self.source,
            "in_model": self.in_model,
            "label": self.label,
        }


@dataclass
class FeatureSet:
    """Features of every customer with at least one order before the cut-off.

    ``raw`` holds human-readable values (days, counts, money, shares) indexed by
    ``customer_id``; ``matrix`` holds the model matrix (same index, model columns
    only): winsorised, log-transformed where skewed, standardised, then weighted
    per block (see ``block_weights`` in :func:`build_features`).
    """

    as_of: dt.datetime
    raw: pd.DataFrame
    matrix: pd.DataFrame
    info: dict[str, FeatureInfo]
    excluded: list[str]
    exclusion_reasons: dict[str, str]
    center: dict[str, float]
    scale: dict[str, float]
    weights: dict[str, float]
    customers_without_orders: np.ndarray = field(
        default_factory=lambda: np.empty(0, dtype=np.int64)
    )
    skipped_columns: dict[str, str] = field(default_factory=dict)
    # one row per purchase order: row (position in raw), weekday (0 = Monday)
    # and hour in the business's time zone; profiles use it to find when each
    # segment orders (a mode of per-customer favourites would favour early
    # hours, since ties go to the first)
    order_times: pd.DataFrame | None = None

    @property
    def customer_ids(self) -> np.ndarray:
        return self.raw.index.to_numpy()

    @property
    def model_columns(self) -> list[str]:
        return list(self.matrix.columns)

    @property
    def descriptions(self) -> dict[str, str]:
        return {name: info.description for name, info in self.info.items()}

    @property
    def X(self) -> np.ndarray:
        return self.matrix.to_numpy(dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the frames themselves are not included)."""
        return {
            "as_of": self.as_of.isoformat(),
            "n_customers": int(len(self.raw)),
            "n_customers_without_orders": int(len(self.customers_without_orders)),
            "model_columns": self.model_columns,
            "columns": {name: info.to_dict() for name, info in self.info.items()},
            "excluded": list(self.excluded),
            "exclusion_reasons": dict(self.exclusion_reasons),
            "skipped_columns": dict(self.skipped_columns),
            "center": {k: _json_float(v) for k, v in self.center.items()},
            "scale": {k: _json_float(v) for k, v in self.scale.items()},
            "weights": {k: _json_float(v) for k, v in self.weights.items()},
        }


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _cutoff(as_of: dt.date | dt.datetime) -> dt.datetime:
    # A bare date means "up to and including that day", so the cut-off instant
    # is the following midnight (UTC).
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware (or a date)")
        return as_of.astimezone(dt.UTC)
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)


def _utc_ns(values: pd.Series, *, frame: str, column: str) -> np.ndarray:
    """int64 nanoseconds since the epoch, UTC; NaT becomes INT64 min."""
    series = values
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            raise ValueError(f"{frame}.{column} must hold timezone-aware timestamps")
        try:
            series = pd.to_datetime(series, utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{frame}.{column} must hold timestamps: {exc}") from exc
    series = series.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns")
    return series.to_numpy().view("i8")


def _require(frame: pd.DataFrame, columns: Sequence[str], *, name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s): {', '.join(missing)}")


def text_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 for missing) and level names of a text column."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64), [str(c) for c in values.cat.categories]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _unique(values: np.ndarray) -> np.ndarray:
    # sort-based: np.unique's hash path is an order of magnitude slower on
    # millions of int64 ids (numpy 2.4)
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _order_codes(customer: np.ndarray, order: np.ndarray) -> np.ndarray:
    # One hash pass over a packed int64 key is several times faster than a
    # two-column groupby; fall back to it only for ids that do not fit.
    if (
        len(order)
        and customer.min() >= 0
        and customer.max() < 2**31
        and order.min() >= 0
        and order.max() < 2**32
    ):
        key = (customer.astype(np.int64) << 32) | order.astype(np.int64)
        if len(key) > 1 and (key[1:] >= key[:-1]).all():
            # lines already sorted by customer and order (as the service loads
            # them): the code is a running count of key changes, no hashing
            return np.cumsum(np.r_[False, key[1:] != key[:-1]], dtype=np.int64)
        codes, _ = pd.factorize(key)
        return codes
    frame = pd.DataFrame({"c": customer, "o": order})
    return frame.groupby(["c", "o"], sort=False).ngroup().to_numpy()


def _top_levels(
    weights: np.ndarray, names: list[str], *, top: int, min_share: float = 0.0
) -> list[int]:
    total = weights.sum()
    if total <= 0:
        return []
    order = np.argsort(-weights, kind="stable")
    keep = [int(i) for i in order[:top] if weights[i] > 0 and weights[i] / total >= min_share]
    # sorted by weight, ties by name, so columns come out in the same order each run
    return sorted(keep, key=lambda i: (-weights[i], names[i]))


def _local_weekday_hour(order_ns: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    if timezone.upper() == "UTC":
        days = order_ns // NS_PER_DAY
        # 1970-01-01 was a Thursday (weekday 3)
        return (days + 3) % 7, (order_ns // NS_PER_HOUR) % 24
    index = pd.DatetimeIndex(order_ns.astype("datetime64[ns]")).tz_localize("UTC")
    local = index.tz_convert(timezone)
    return local.weekday.to_numpy().astype(np.int64), local.hour.to_numpy().astype(np.int64)


def _favourite(codes: np.ndarray, customer: np.ndarray, n_customers: int, n_levels: int):
    counts = np.bincount(customer * n_levels + codes, minlength=n_customers * n_levels)
    # argmax takes the first level on ties, which keeps it deterministic
    return counts.reshape(n_customers, n_levels).argmax(axis=1)


def build_features(
    *,
    lines: pd.DataFrame,
    customers: pd.DataFrame | None,
    events: pd.DataFrame | None,
    as_of: dt.date | dt.datetime,
    sensitive: set[str] | frozenset[str] = frozenset(),
    allow_gender_and_age: bool = False,
    attribute_columns: Sequence[str] | None = None,
    top_categories: int = 8,
    top_channels: int = 5,
    top_event_types: int = 8,
    top_countries: int = 5,
    min_level_share: float = 0.03,
    engagement_days: int = 90,
    winsor: tuple[float, float] = (0.01, 0.99),
    block_weights: dict[str, float] | None = None,
    timezone: str = "UTC",
) -> FeatureSet:
    """Per-customer features from order lines, customer records and events.

    Inputs (extra columns are ignored unless named in ``attribute_columns``):

    - ``lines``: one row per order line: ``customer_id`` (int), ``order_id`` (int),
      ``ordered_at`` (timezone-aware), ``quantity`` (negative on returns),
      ``amount`` (line total, negative on returns), optional ``category`` and
      ``channel`` (text or None).
    - ``customers``: ``customer_id`` plus any of ``signup_at`` (timezone-aware),
      ``birth_date``, ``gender``, ``country`` and custom attribute columns.
    - ``events``: ``customer_id``, ``type``, ``occurred_at`` (timezone-aware).

    Only rows up to ``as_of`` are used (a date includes that whole day, UTC).
    The customers described are those with at least one purchase order (an order
    with a line of positive quantity) before the cut-off; the others are listed
    in ``customers_without_orders``.

    Sensitive attributes (gender, age/birth date, and every column named in
    ``sensitive``) stay in ``raw`` for reference but are never put in the model
    matrix; they are listed in ``excluded`` with the reason. Gender and age may
    be modelled only when ``allow_gender_and_age`` is set; columns in
    ``sensitive`` are always left out.

    ``block_weights`` sets how much each group of columns counts in the
    clustering distance. Core behaviour columns (recency, frequency, monetary,
    tenure, cadence, basket, returns) each count 1; every other block is scaled
    so that all its columns together count its weight (defaults: category 2,
    channel 1, engagement 1, attribute 1). Without this a dozen category or
    country dummies would outvote recency and spend.
    """
    _require(lines, REQUIRED_LINE_COLUMNS, name="lines")
    cutoff = _cutoff(as_of)
    cutoff_ns = int(pd.Timestamp(cutoff).as_unit("ns").value)
    is_date = not isinstance(as_of, dt.datetime)
    weights_by_block = {"core": 1.0, "category": 2.0, "channel": 1.0, "engagement": 1.0}
    weights_by_block["attribute"] = 1.0
    weights_by_block.update(block_weights or {})

    # --- order lines up to the cut-off -----------------------------------
    line_ns = _utc_ns(lines["ordered_at"], frame="lines", column="ordered_at")
    valid = line_ns != np.iinfo(np.int64).min
    valid &= (line_ns < cutoff_ns) if is_date else (line_ns <= cutoff_ns)
    everything = bool(valid.all())

    def keep(values: np.ndarray) -> np.ndarray:
        return values if everything else values[valid]

    cust = keep(lines["customer_id"].to_numpy()).astype(np.int64, copy=False)
    order_col = lines["order_id"]
    if not pd.api.types.is_integer_dtype(order_col.dtype):
        # text order numbers (e.g. "C536379") only need to be told apart
        order_col = pd.Series(pd.factorize(order_col)[0], index=lines.index)
    order = keep(order_col.to_numpy()).astype(np.int64, copy=False)
    qty = keep(lines["quantity"].to_numpy(dtype=np.float64, na_value=0.0))
    amt = keep(lines["amount"].to_numpy(dtype=np.float64, na_value=0.0))
    line_ns = keep(line_ns)
    positive = qty > 0

    ocode = _order_codes(cust, order)
    n_orders = int(ocode.max()) + 1 if len(ocode) else 0
    order_customer = np.zeros(n_orders, dtype=np.int64)
    order_customer[ocode] = cust
    # ufunc.at is fast for int64 since numpy 1.25, far faster than a groupby
    order_ns = np.full(n_orders, np.iinfo(np.int64).max)
    np.minimum.at(order_ns, ocode, line_ns)
    order_gross = np.bincount(ocode, weights=np.where(positive, amt, 0.0), minlength=n_orders)
    order_units = np.bincount(ocode, weights=np.where(positive, qty, 0.0), minlength=n_orders)
    order_net = np.bincount(ocode, weights=amt, minlength=n_orders)
    order_returned = np.bincount(ocode, weights=np.where(qty < 0, -amt, 0.0), minlength=n_orders)
    order_is_purchase = np.bincount(ocode, weights=positive, minlength=n_orders) > 0

    customer_ids = _unique(order_customer[order_is_purchase])
    n = len(customer_ids)
    if n == 0:
        raise ValueError("no customer has a purchase order before the cut-off")
    # orders of customers who only ever returned goods are left out (no purchase
    # to describe); every other order maps to its customer's row
    order_cc = np.searchsorted(customer_ids, order_customer)
    order_cc[order_cc >= n] = 0
    known = customer_ids[order_cc] == order_customer
    purchase = order_is_purchase & known

    pcc = order_cc[purchase]
    frequency = np.bincount(pcc, minlength=n).astype(np.float64)
    gross = np.bincount(pcc, weights=order_gross[purchase], minlength=n)
    units = np.bincount(pcc, weights=order_units[purchase], minlength=n)
    net = np.bincount(order_cc[known], weights=order_net[known], minlength=n)
    returned = np.bincount(order_cc[known], weights=order_returned[known], minlength=n)
    first_ns = np.full(n, np.iinfo(np.int64).max)
    last_ns = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first_ns, pcc, order_ns[purchase])
    np.maximum.at(last_ns, pcc, order_ns[purchase])

    recency = (cutoff_ns - last_ns) / NS_PER_DAY
    span = (last_ns - first_ns) / NS_PER_DAY
    with np.errstate(divide="ignore", invalid="ignore"):
        cadence = np.where(frequency > 1, span / (frequency - 1), np.nan)
    repeat = frequency > 1
    typical_gap = float(np.median(cadence[repeat])) if repeat.any() else 0.0
    # A one-order customer has not reordered for `recency` days, so their gap is
    # at least that long; filling with the typical gap of repeat buyers (or the
    # recency, if longer) keeps them from looking like the most frequent buyers.
    cadence = np.where(repeat, cadence, np.maximum(recency, typical_gap))

    raw: dict[str, np.ndarray] = {}
    info: dict[str, FeatureInfo] = {}

    def add(name: str, values: np.ndarray, description: str, kind: str, block: str, **kw: Any):
        raw[name] = np.asarray(values, dtype=np.float64)
        info[name] = FeatureInfo(
            name=name,
            description=description,
            kind=kind,
            block=block,
            source=kw.pop("source", name),
            **kw,
        )

    add("recency_days", recency, "days since last order", "days", "core", source="orders")
    add("frequency", frequency, "orders", "count", "core", source="orders")
    add(
        "monetary",
        np.maximum(net, 0.0),
        "total spend net of returns",
        "money",
        "core",
        source="orders",
    )
    add("avg_basket_value", gross / frequency, "spend per order", "money", "core", source="orders")
    add("avg_basket_size", units / frequency, "items per order", "units", "core", source="orders")
    add("mean_days_between_orders", cadence, "days between orders", "days", "core", source="orders")
    with np.errstate(divide="ignore", invalid="ignore"):
        return_share = np.clip(np.where(gross > 0, returned / gross, 0.0), 0.0, 1.0)
    add("return_share", return_share, "share of spend returned", "share", "core", source="orders")

    # --- customers: tenure and declared attributes -----------------------
    skipped: dict[str, str] = {}
    cust_frame = None
    if customers is not None and len(customers.columns):
        _require(customers, ("customer_id",), name="customers")
        cust_frame = customers.drop_duplicates("customer_id", keep="last").set_index("customer_id")
        cust_frame = cust_frame.reindex(customer_ids)

    first_days = (cutoff_ns - first_ns) / NS_PER_DAY
    tenure = first_days
    if cust_frame is not None and "signup_at" in cust_frame.columns:
        signup_ns = _utc_ns(cust_frame["signup_at"], frame="customers", column="signup_at")
        signup_days = np.where(
            signup_ns == np.iinfo(np.int64).min, np.nan, (cutoff_ns - signup_ns) / NS_PER_DAY
        )
        # an order before the recorded sign-up (imported history) still counts
        tenure = np.fmax(first_days, np.where(signup_days > 0, signup_days, np.nan))
    add("tenure_days", tenure, "days as a customer", "days", "core", source="signup_at")

    # --- category mix (share of gross spend) -----------------------------
    line_cc = order_cc[ocode]
    line_known = known[ocode]
    if "category" in lines.columns:
        cat_codes, cat_names = text_codes(lines["category"])
        cat_codes = keep(cat_codes)
        sel = positive & line_known & (cat_codes >= 0)
        spend = np.bincount(cat_codes[sel], weights=amt[sel], minlength=len(cat_names))
        top = _top_levels(spend, cat_names, top=top_categories)
        if top:
            remap = np.full(len(cat_names) + 1, len(top), dtype=np.int64)
            remap[top] = np.arange(len(top))
            mixed = positive & line_known
            levels = remap[cat_codes[mixed]]  # -1 (missing) lands on "other" too
            mix = np.bincount(
                line_cc[mixed] * (len(top) + 1) + levels,
                weights=amt[mixed],
                minlength=n * (len(top) + 1),
            ).reshape(n, len(top) + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                mix = np.where(gross[:, None] > 0, mix / gross[:, None], 0.0)
            mix = np.clip(mix, 0.0, 1.0)
            for j, code in enumerate(top):
                label = cat_names[code]
                add(
                    f"category:{label}",
                    mix[:, j],
                    f"share of spend on {label}",
                    "share",
                    "category",
                    source="category",
                    label=label,
                )
            if mix[:, -1].any():
                add(
                    "category:other",
                    mix[:, -1],
                    "share of spend on other categories",
                    "share",
                    "category",
                    source="category",
                    label="other",
                )

    # --- channels (share of purchase orders) -----------------------------
    if "channel" in lines.columns:
        ch_codes, ch_names = text_codes(lines["channel"])
        ch_codes = keep(ch_codes)
        if len(ch_names):
            # an order's channel is that of its lines (the highest code if mixed)
            order_channel = np.full(n_orders, -1, dtype=np.int64)
            np.maximum.at(order_channel, ocode, ch_codes)
            pch = order_channel[purchase]
            counted = pch >= 0
            per_level = np.bincount(pch[counted], minlength=len(ch_names)).astype(np.float64)
            top = _top_levels(per_level, ch_names, top=top_channels)
            if len(top) > 1 or (len(top) == 1 and (~counted).any()):
                counts = np.bincount(
                    pcc[counted] * len(ch_names) + pch[counted], minlength=n * len(ch_names)
                ).reshape(n, len(ch_names))
                for code in top:
                    label = ch_names[code]
                    add(
                        f"channel:{label}",
                        counts[:, code] / frequency,
                        f"share of orders via {label}",
                        "share",
                        "channel",
                        source="channel",
                        label=label,
                    )

    # --- preferred weekday and hour (described, not modelled) ------------
    weekday, hour = _local_weekday_hour(order_ns[purchase], timezone)
    add(
        "favourite_weekday",
        _favourite(weekday, pcc, n, 7),
        "favourite weekday (0 = Monday)",
        "weekday",
        "time",
        source="ordered_at",
        in_model=False,
    )
    add(
        "favourite_hour",
        _favourite(hour, pcc, n, 24),
        "favourite hour of day",
        "hour",
        "time",
        source="ordered_at",
        in_model=False,
    )

    # --- engagement from events ------------------------------------------
    if events is not None and len(events):
        _require(events, ("customer_id", "type", "occurred_at"), name="events")
        ev_ns = _utc_ns(events["occurred_at"], frame="events", column="occurred_at")
        start_ns = cutoff_ns - engagement_days * NS_PER_DAY
        in_window = (ev_ns > start_ns) & ((ev_ns < cutoff_ns) if is_date else (ev_ns <= cutoff_ns))
        ev_cust = events["customer_id"].to_numpy()[in_window].astype(np.int64)
        ev_codes, ev_names = text_codes(events["type"][in_window])
        ecc = np.searchsorted(customer_ids, ev_cust)
        ecc[ecc >= n] = 0
        ev_known = (customer_ids[ecc] == ev_cust) & (ev_codes >= 0)
        ecc, ev_codes = ecc[ev_known], ev_codes[ev_known]
        per_type = np.bincount(ev_codes, minlength=len(ev_names)).astype(np.float64)
        for code in _top_levels(per_type, ev_names, top=top_event_types):
            label = ev_names[code]
            add(
                f"events:{label}",
                np.bincount(ecc[ev_codes == code], minlength=n),
                f"'{label}' events in the last {engagement_days} days",
                "events",
                "engagement",
                source="events",
                label=label,
            )

    # --- declared attributes ---------------------------------------------
    if cust_frame is not None:
        if "birth_date" in cust_frame.columns:
            born = pd.to_datetime(cust_frame["birth_date"], errors="coerce")
            if isinstance(born.dtype, pd.DatetimeTZDtype):
                born = born.dt.tz_convert("UTC").dt.tz_localize(None)
            age = (pd.Timestamp(cutoff.replace(tzinfo=None)) - born).dt.days / 365.2425
            add(
                "age",
                age.to_numpy(dtype=np.float64, na_value=np.nan),
                "age in years",
                "years",
                "attribute",
                source="birth_date",
            )
        if "gender" in cust_frame.columns:
            _one_hot(
                add,
                cust_frame["gender"],
                "gender",
                "are {label}",
                top=5,
                min_share=min_level_share,
                skipped=skipped,
            )
        if "country" in cust_frame.columns:
            _one_hot(
                add,
                cust_frame["country"],
                "country",
                "live in {label}",
                top=top_countries,
                min_share=min_level_share,
                skipped=skipped,
            )
        if attribute_columns is None:
            attribute_columns = []
            for c in cust_frame.columns:
                if c in STANDARD_CUSTOMER_COLUMNS:
                    continue
                if str(c).lower() in IDENTITY_COLUMNS:
                    skipped[str(c)] = "identifies a person, not a shared trait"
                    continue
                attribute_columns.append(c)
        for column in attribute_columns:
            if column not in cust_frame.columns:
                skipped[column] = "not in the customers data"
                continue
            _attribute(
                add, cust_frame[column], str(column), min_share=min_level_share, skipped=skipped
            )

    raw_frame = pd.DataFrame(raw, index=pd.Index(customer_ids, name="customer_id"))

    # --- model matrix ------------------------------------------------------
    sensitive_sources = {s.lower() for s in sensitive}
    default_sensitive = set() if allow_gender_and_age else set(DEFAULT_SENSITIVE)
    excluded: list[str] = []
    reasons: dict[str, str] = {}
    model_cols: list[str] = []
    for name, meta in info.items():
        src = meta.source.lower()
        if src in sensitive_sources or name.lower() in sensitive_sources:
            excluded.append(name)
            reasons[name] = f"sensitive: '{meta.source}' is marked sensitive in settings"
        elif src in default_sensitive:
            excluded.append(name)
            reasons[name] = (
                f"sensitive: '{meta.source}' (gender and age are never modelled by default)"
            )
        elif meta.in_model:
            model_cols.append(name)
    for name in excluded:
        info[name] = replace(info[name], in_model=False)

    matrix, center, scale, weights = _model_matrix(
        raw_frame, model_cols, info, winsor=winsor, block_weights=weights_by_block
    )
    for name in model_cols:
        if name not in matrix.columns:
            info[name] = replace(info[name], in_model=False)
            skipped[name] = "same value for every customer"

    without = np.empty(0, dtype=np.int64)
    if customers is not None and "customer_id" in customers.columns:
        everyone = _unique(customers["customer_id"].to_numpy().astype(np.int64))
        without = np.setdiff1d(everyone, customer_ids, assume_unique=True)

    return FeatureSet(
        as_of=cutoff,
        raw=raw_frame,
        matrix=matrix,
        info=info,
        excluded=excluded,
        exclusion_reasons=reasons,
        center=center,
        scale=scale,
        weights=weights,
        customers_without_orders=without,
        order_times=pd.DataFrame(
            {
                "row": pcc.astype(np.int64),
                "weekday": weekday.astype(np.int8),
                "hour": hour.astype(np.int8),
            }
        ),
        skipped_columns=skipped,
    )


def _one_hot(
    add,
    values: pd.Series,
    source: str,
    template: str,
    *,
    top: int,
    min_share: float,
    skipped: dict[str, str],
) -> None:
    codes, names = text_codes(values.astype("object").where(values.notna(), None))
    if not names:
        skipped[source] = "no values"
        return
    counts = np.bincount(codes[codes >= 0], minlength=len(names)).astype(np.float64)
    for code in _top_levels(counts, names, top=top, min_share=min_share):
        label = names[code]
        add(
            f"{source}:{label}",
            (codes == code).astype(np.float64),
            template.format(label=label),
            "flag",
            "attribute",
            source=source,
            label=label,
        )


def _attribute(
    add, values: pd.Series, column: str, *, min_share: float, skipped: dict[str, str]
) -> None:
    n_present = int(values.notna().sum())
    if n_present == 0:
        skipped[column] = "no values"
        return
    if pd.api.types.is_bool_dtype(values.dtype):
        add(
            column,
            values.astype("float64").to_numpy(),
            column.replace("_", " "),
            "flag",
            "attribute",
        )
        return
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64")
        add(
            column,
            numbers.fillna(numbers.median()).to_numpy(),
            column.replace("_", " "),
            "number",
            "attribute",
        )
        return
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        skipped[column] = "dates are not used as attributes"
        return
    n_levels = values.nunique(dropna=True)
    # mostly-unique text is an identifier (email, name), not a shared trait
    if n_levels > 50 or (n_present >= 20 and n_levels > 0.5 * n_present):
        skipped[column] = "too many distinct values to be a shared trait"
        return
    _one_hot(
        add,
        values,
        column,
        f"{column.replace('_', ' ')}: {{label}}",
        top=5,
        min_share=min_share,
        skipped=skipped,
    )


def _model_matrix(
    raw: pd.DataFrame,
    columns: list[str],
    info: dict[str, FeatureInfo],
    *,
    winsor: tuple[float, float],
    block_weights: dict[str, float],
) -> tuple[pd.DataFrame, dict[str, float], dict[str, float], dict[str, float]]:
    values = raw[columns].to_numpy(dtype=np.float64, copy=True)
    values = np.where(np.isfinite(values), values, np.nan)
    low_q, high_q = winsor
    kinds = [info[c].kind for c in columns]
    skewed = np.array([k in SKEWED_KINDS for k in kinds], dtype=bool)
    numeric = np.array([k in SKEWED_KINDS or k in {"number", "years"} for k in kinds], dtype=bool)
    if numeric.any():
        block = values[:, numeric]
        # nanquantile is several times slower than quantile; use it only when needed
        quantile = np.nanquantile if np.isnan(block).any() else np.quantile
        lo, hi = quantile(block, [low_q, high_q], axis=0)
        values[:, numeric] = np.clip(values[:, numeric], lo, hi)
    if skewed.any():
        values[:, skewed] = np.log1p(np.maximum(values[:, skewed], 0.0))
    missing = np.isnan(values)
    if missing.any():
        values = np.where(missing, np.nanmedian(values, axis=0), values)
    center = values.mean(axis=0)
    scale = values.std(axis=0)
    keep = scale > 1e-12
    kept = [c for c, k in zip(columns, keep, strict=True) if k]
    values = (values[:, keep] - center[keep]) / scale[keep]

    block_sizes: dict[str, int] = {}
    for c in kept:
        block_sizes[info[c].block] = block_sizes.get(info[c].block, 0) + 1
    weights = {}
    for c in kept:
        block = info[c].block
        w = block_weights.get(block, 1.0)
        # core columns count individually; other blocks share their weight
        weights[c] = float(np.sqrt(w if block == "core" else w / block_sizes[block]))
    values *= np.array([weights[c] for c in kept])
    matrix = pd.DataFrame(values, index=raw.index, columns=kept)
    center_d = {c: float(v) for c, v, k in zip(columns, center, keep, strict=True) if k}
    scale_d = {c: float(v) for c, v, k in zip(columns, scale, keep, strict=True) if k}
    return matrix, center_d, scale_d, weights
