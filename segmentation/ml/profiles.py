"""Segment profiles: how each segment differs from the whole customer base.

A profile holds the segment's size, share of customers and of revenue, and for
every feature the segment mean against the base mean (ratio, index = 100 ×
ratio, and a standardised difference used to rank how distinctive it is), with
a plain sentence such as "buys 3.2× more often than average (9.6 orders vs
3.0)". Profiles feed the persona writer and the segment page (a readable list
and a chart); ``to_dict()`` is what gets stored with the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation.ml.features import WEEKDAY_NAMES, FeatureInfo, FeatureSet, text_codes

# ratios within this band read as "about average"
_SAME_LOW, _SAME_HIGH = 0.87, 1.15
# A segment's favourite products over-index against the whole base: lift = share
# of the segment's members who bought the product / share of all customers who
# did. A favourite needs a lift of at least 1.2 (a fifth above average) and
# support: at least 5 buyers in the segment and 2% of its members, so one or two
# people's odd purchase never becomes a persona's favourite. Ranked by lift, then
# by share of buyers.
FAVOURITE_MIN_LIFT = 1.2
FAVOURITE_MIN_BUYERS = 5
FAVOURITE_MIN_SHARE = 0.02


def _f(value: Any) -> float | None:
    """A JSON-safe float (NaN and infinities become None)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class FeatureComparison:
    feature: str
    description: str
    kind: str
    label: str
    segment_mean: float
    base_mean: float
    segment_median: float
    ratio: float | None
    # (segment mean - base mean) / base standard deviation: how distinctive
    difference: float
    sentence: str
    base_std: float = float("nan")  # spread over all customers (matching scale)

    @property
    def index(self) -> float | None:
        return None if self.ratio is None else 100.0 * self.ratio

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "description": self.description,
            "kind": self.kind,
            "label": self.label,
            "segment_mean": _f(self.segment_mean),
            "base_mean": _f(self.base_mean),
            "segment_median": _f(self.segment_median),
            "ratio": _f(self.ratio),
            "index": _f(self.index),
            "difference": _f(self.difference),
            "base_std": _f(self.base_std),
            "sentence": self.sentence,
        }


@dataclass
class SegmentProfile:
    key: str
    size: int
    share_of_customers: float
    revenue: float
    share_of_revenue: float
    features: list[FeatureComparison]  # most distinctive first
    top_categories: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    favourite_weekday: str | None = None
    favourite_weekday_share: float | None = None
    favourite_hour: int | None = None
    favourite_hour_share: float | None = None
    weekday_shares: list[float] = field(default_factory=list)  # Monday first
    hour_shares: list[float] = field(default_factory=list)  # 0:00 first
    # bought by the largest share of members (each with its lift against the base)
    top_products: list[dict[str, Any]] = field(default_factory=list)
    # the favourites: bought clearly more than by the base, with enough buyers
    # (FAVOURITE_MIN_LIFT, FAVOURITE_MIN_BUYERS, FAVOURITE_MIN_SHARE)
    distinctive_products: list[dict[str, Any]] = field(default_factory=list)
    # recency and loyalty facts for value and risk statements
    ordered_last_30_days: float = 0.0
    ordered_last_90_days: float = 0.0
    silent_over_180_days: float = 0.0
    one_order_share: float = 0.0
    overdue_share: float = 0.0
    currency: str = ""

    def feature(self, name: str) -> FeatureComparison | None:
        return next((c for c in self.features if c.feature == name), None)

    @property
    def sentences(self) -> list[str]:
        """Statements for the most distinctive features, at most six."""
        # "spends 0% on garden" says little: shares are described where they
        # stand out upwards
        strong = [
            c
            for c in self.features
            if abs(c.difference) >= 0.25
            and c.sentence
            and not (
                c.kind in {"share", "flag"} and c.difference < 0 and c.feature != "return_share"
            )
        ]
        return [c.sentence for c in strong[:6]]

    @property
    def value_index(self) -> float | None:
        """Share of revenue per share of customers (1 = average)."""
        if self.share_of_customers <= 0:
            return None
        return self.share_of_revenue / self.share_of_customers

    def chart(self) -> list[dict[str, Any]]:
        """Rows for a bar chart of the segment against the base (index 100 = base)."""
        return [
            {
                "feature": c.feature,
                "label": c.description,
                "segment": _f(c.segment_mean),
                "base": _f(c.base_mean),
                "index": _f(c.index),
            }
            for c in self.features
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "size": int(self.size),
            "share_of_customers": _f(self.share_of_customers),
            "revenue": _f(self.revenue),
            "share_of_revenue": _f(self.share_of_revenue),
            "value_index": _f(self.value_index),
            "sentences": self.sentences,
            "features": [c.to_dict() for c in self.features],
            "top_categories": self.top_categories,
            "channels": self.channels,
            "favourite_weekday": self.favourite_weekday,
            "favourite_weekday_share": _f(self.favourite_weekday_share),
            "favourite_hour": self.favourite_hour,
            "favourite_hour_share": _f(self.favourite_hour_share),
            "weekday_shares": [_f(x) for x in self.weekday_shares],
            "hour_shares": [_f(x) for x in self.hour_shares],
            "top_products": self.top_products,
            "distinctive_products": self.distinctive_products,
            "ordered_last_30_days": _f(self.ordered_last_30_days),
            "ordered_last_90_days": _f(self.ordered_last_90_days),
            "silent_over_180_days": _f(self.silent_over_180_days),
            "one_order_share": _f(self.one_order_share),
            "overdue_share": _f(self.overdue_share),
            "currency": self.currency,
            "chart": self.chart(),
        }


@dataclass
class ProfileSet:
    profiles: list[SegmentProfile]
    base: SegmentProfile  # the whole customer base, described the same way

    def get(self, key: str) -> SegmentProfile:
        return next(p for p in self.profiles if p.key == str(key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "segments": [p.to_dict() for p in self.profiles],
        }


def _money(value: float, currency: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{currency}{text}" if currency else text


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×"


def _sentence(meta: FeatureInfo, seg: float, base: float, currency: str) -> str:
    """A plain-words comparison of one feature; empty when nothing useful to say."""
    if not (math.isfinite(seg) and math.isfinite(base)):
        return ""
    ratio = seg / base if base > 0 else None
    name, kind, label = meta.name, meta.kind, meta.label
    if name == "frequency":
        if ratio is None or _SAME_LOW <= ratio <= _SAME_HIGH:
            return f"orders about as often as average ({seg:.1f} orders)"
        if ratio > 1:
            return f"buys {_times(ratio)} more often than average ({seg:.1f} orders vs {base:.1f})"
        return f"buys {_times(1 / ratio)} less often than average ({seg:.1f} orders vs {base:.1f})"
    if name == "monetary":
        pair = f"{_money(seg, currency)} vs {_money(base, currency)}"
        if ratio is None or _SAME_LOW <= ratio <= _SAME_HIGH:
            return f"spends about the average in total ({_money(seg, currency)})"
        if ratio > 1:
            return f"spends {_times(ratio)} more than average in total ({pair})"
        return f"spends {_times(1 / ratio)} less than average in total ({pair})"
    if name == "recency_days":
        return f"last ordered {seg:.0f} days ago on average (base: {base:.0f})"
    if name == "avg_basket_value":
        return f"spends {_money(seg, currency)} per order (base: {_money(base, currency)})"
    if name == "avg_basket_size":
        return f"buys {seg:.1f} items per order (base: {base:.1f})"
    if name == "mean_days_between_orders":
        return f"reorders every {seg:.0f} days on average (base: {base:.0f}; repeat buyers)"
    if name == "tenure_days":
        if seg >= 60 and base >= 60:
            return f"has been a customer for {seg / 30.44:.0f} months on average (base: {base / 30.44:.0f})"
        return f"has been a customer for {seg:.0f} days on average (base: {base:.0f})"
    if name == "return_share":
        return f"returns {seg:.0%} of what they buy (base: {base:.0%})"
    if meta.block == "category" and kind == "share":
        return f"spends {seg:.0%} of their money on {label} (base: {base:.0%})"
    if meta.block == "channel" and kind == "share":
        return f"places {seg:.0%} of orders via {label} (base: {base:.0%})"
    if kind == "events":
        return f"has {seg:.1f} '{label}' events in the last 90 days on average (base: {base:.1f})"
    if kind == "flag":
        return f"{seg:.0%} {meta.description} (base: {base:.0%})"
    if kind == "share":
        return f"{meta.description}: {seg:.0%} (base: {base:.0%})"
    if kind == "money":
        return f"{meta.description}: {_money(seg, currency)} (base: {_money(base, currency)})"
    return f"{meta.description}: {seg:.1f} on average (base: {base:.1f})"


def build_profiles(
    *,
    features: FeatureSet,
    labels: np.ndarray | pd.Series | list,
    product_lines: pd.DataFrame | None = None,
    include_sensitive: bool = False,
    currency: str = "",
    top_n: int = 5,
    favourite_min_buyers: int = FAVOURITE_MIN_BUYERS,
) -> ProfileSet:
    """Profile every segment in ``labels`` against the whole base.

    ``labels`` is one segment label per row of ``features.raw`` (an array in
    the same order, or a Series indexed by customer_id); labels become string
    keys. ``product_lines`` (optional) has columns ``customer_id``, ``product``
    (a display name) and ``amount``, plus optional ``ordered_at`` (rows after
    ``features.as_of`` are ignored); it gives each segment's favourite products
    (see FAVOURITE_MIN_LIFT). Leave non-merchandise and hidden products out of
    it (the loader does). Sensitive columns are left out of profiles unless ``include_sensitive``.
    """
    raw = features.raw
    if isinstance(labels, pd.Series):
        labels = labels.reindex(raw.index)
        if labels.isna().any():
            raise ValueError("labels has no segment for some customers of the feature set")
        label_arr = labels.to_numpy()
    else:
        label_arr = np.asarray(labels)
    if len(label_arr) != len(raw):
        raise ValueError(f"labels has {len(label_arr)} rows, features has {len(raw)}")
    keys = pd.Series(label_arr, index=raw.index).astype(str)
    # segments listed in label order when labels are numbers, else by name
    uniq = pd.unique(label_arr)
    try:
        ordered = [str(u) for u in sorted(uniq)]
    except TypeError:
        ordered = sorted(str(u) for u in uniq)

    hidden = set() if include_sensitive else set(features.excluded)
    compared = [
        c
        for c, meta in features.info.items()
        if c not in hidden and meta.kind not in {"weekday", "hour"}
    ]
    values = raw[compared].astype(np.float64)
    # cadence is only meaningful for repeat buyers (one-order customers carry a
    # filled-in value), so it is compared among repeat buyers only
    if "mean_days_between_orders" in values.columns and "frequency" in raw.columns:
        values.loc[raw["frequency"] <= 1, "mean_days_between_orders"] = np.nan

    grouped = values.groupby(keys, sort=False)
    seg_means = grouped.mean()
    seg_medians = grouped.median()
    base_mean = values.mean()
    base_std = values.std(ddof=0).replace(0.0, np.nan)

    monetary = raw["monetary"].astype(np.float64)
    revenue_by = monetary.groupby(keys, sort=False).sum()
    total_revenue = float(monetary.sum())
    n = len(raw)

    products = _products(
        product_lines, features, keys, top_n=top_n, min_buyers=favourite_min_buyers
    )

    def describe(key: str | None, mask: np.ndarray) -> SegmentProfile:
        if key is None:
            means, medians = base_mean, values.median()
            size, revenue = n, total_revenue
        else:
            means, medians = seg_means.loc[key], seg_medians.loc[key]
            size, revenue = int(mask.sum()), float(revenue_by.loc[key])
        comps = []
        for c in compared:
            meta = features.info[c]
            seg, base = float(means[c]), float(base_mean[c])
            std = float(base_std[c]) if math.isfinite(base_std[c]) else float("nan")
            diff = (seg - base) / std if math.isfinite(std) and math.isfinite(seg) else 0.0
            comps.append(
                FeatureComparison(
                    feature=c,
                    description=meta.description,
                    kind=meta.kind,
                    label=meta.label,
                    segment_mean=seg,
                    base_mean=base,
                    segment_median=float(medians[c]),
                    ratio=seg / base if base > 0 and math.isfinite(seg) else None,
                    difference=diff,
                    sentence=_sentence(meta, seg, base, currency),
                    base_std=std,
                )
            )
        comps.sort(key=lambda c: -abs(c.difference))
        members = raw.loc[mask]
        profile = SegmentProfile(
            key="all" if key is None else key,
            size=size,
            share_of_customers=size / n if n else 0.0,
            revenue=revenue,
            share_of_revenue=revenue / total_revenue if total_revenue > 0 else 0.0,
            features=comps,
            currency=currency,
        )
        _mixes(profile, members, raw, features, top_n=top_n)
        _timing(profile, mask, features)
        _loyalty(profile, members)
        profile.top_products, profile.distinctive_products = products.get(profile.key, ([], []))
        return profile

    key_arr = keys.to_numpy()
    profiles = [describe(k, key_arr == k) for k in ordered]
    base = describe(None, np.ones(n, dtype=bool))
    return ProfileSet(profiles=profiles, base=base)


def _mixes(
    profile: SegmentProfile,
    members: pd.DataFrame,
    everyone: pd.DataFrame,
    features: FeatureSet,
    *,
    top_n: int,
) -> None:
    # spend-weighted category shares: the segment's spend in a category over
    # its total spend (not an average of per-customer shares)
    def weighted(cols: list[str], weight_of) -> tuple[pd.Series, pd.Series]:
        w_seg, w_all = weight_of(members), weight_of(everyone)
        seg = (members[cols].mul(w_seg, axis=0).sum() / max(w_seg.sum(), 1e-12)).fillna(0.0)
        base = (everyone[cols].mul(w_all, axis=0).sum() / max(w_all.sum(), 1e-12)).fillna(0.0)
        return seg, base

    info = features.info
    cats = [c for c, m in info.items() if m.block == "category" and m.label != "other"]
    if cats:
        seg, base = weighted(cats, lambda f: f["avg_basket_value"] * f["frequency"])
        profile.top_categories = [
            {
                "name": info[c].label,
                "share_of_spend": _f(seg[c]),
                "base_share_of_spend": _f(base[c]),
                "index": _f(100 * seg[c] / base[c]) if base[c] > 0 else None,
            }
            for c in seg.sort_values(ascending=False, kind="stable").index[:top_n]
            if seg[c] > 0
        ]
    chans = [c for c, m in info.items() if m.block == "channel"]
    if chans:
        seg, base = weighted(chans, lambda f: f["frequency"])
        profile.channels = [
            {
                "name": info[c].label,
                "share_of_orders": _f(seg[c]),
                "base_share_of_orders": _f(base[c]),
            }
            for c in seg.sort_values(ascending=False, kind="stable").index
            if seg[c] > 0
        ]


def _timing(profile: SegmentProfile, rows: np.ndarray, features: FeatureSet) -> None:
    times = features.order_times
    if times is None or len(times) == 0 or not rows.any():
        return
    mine = rows[times["row"].to_numpy()]
    if not mine.any():
        return
    weekdays = np.bincount(times["weekday"].to_numpy()[mine], minlength=7)
    hours = np.bincount(times["hour"].to_numpy()[mine], minlength=24)
    total = float(mine.sum())
    profile.favourite_weekday = WEEKDAY_NAMES[int(weekdays.argmax())]
    profile.favourite_weekday_share = float(weekdays.max() / total)
    profile.favourite_hour = int(hours.argmax())
    profile.favourite_hour_share = float(hours.max() / total)
    profile.weekday_shares = (weekdays / total).tolist()
    profile.hour_shares = (hours / total).tolist()


def _loyalty(profile: SegmentProfile, members: pd.DataFrame) -> None:
    if len(members) == 0:
        return
    recency = members["recency_days"]
    profile.ordered_last_30_days = float((recency <= 30).mean())
    profile.ordered_last_90_days = float((recency <= 90).mean())
    profile.silent_over_180_days = float((recency > 180).mean())
    repeat = members["frequency"] > 1
    profile.one_order_share = float((~repeat).mean())
    if "mean_days_between_orders" in members.columns:
        # silent for more than twice their usual gap between orders
        overdue = repeat & (recency > 2 * members["mean_days_between_orders"])
        profile.overdue_share = float(overdue.sum() / max(int(repeat.sum()), 1))


def _products(
    product_lines: pd.DataFrame | None,
    features: FeatureSet,
    keys: pd.Series,
    *,
    top_n: int,
    min_buyers: int = FAVOURITE_MIN_BUYERS,
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per segment: the products bought by the largest share of members, and the
    favourites (over-indexing against the whole base, with minimum support)."""
    if product_lines is None or len(product_lines) == 0:
        return {}
    missing = [c for c in ("customer_id", "product", "amount") if c not in product_lines.columns]
    if missing:
        raise ValueError(f"product_lines is missing column(s): {', '.join(missing)}")
    frame = product_lines
    if "ordered_at" in frame.columns:
        frame = frame[frame["ordered_at"] < pd.Timestamp(features.as_of)]
    pcode, pnames = text_codes(frame["product"])
    rows = features.raw.index.get_indexer(frame["customer_id"])
    amount = frame["amount"].to_numpy(dtype=np.float64, na_value=0.0)
    ok = (rows >= 0) & (pcode >= 0) & (amount > 0)
    rows, pcode, amount = rows[ok], pcode[ok], amount[ok]
    if len(rows) == 0:
        return {}
    seg_code, seg_names = pd.factorize(keys.to_numpy())
    n_seg, n_prod, n = len(seg_names), len(pnames), len(keys)
    # one (customer, product) pair per buyer, however many times they bought it
    pairs = np.sort(rows.astype(np.int64) * n_prod + pcode)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    buyer_rows, buyer_prods = pairs // n_prod, pairs % n_prod
    buyers = np.bincount(
        seg_code[buyer_rows] * n_prod + buyer_prods, minlength=n_seg * n_prod
    ).reshape(n_seg, n_prod)
    spend = np.bincount(
        seg_code[rows] * n_prod + pcode, weights=amount, minlength=n_seg * n_prod
    ).reshape(n_seg, n_prod)
    base_buyers = buyers.sum(axis=0)
    base_share = base_buyers / n
    sizes = np.bincount(seg_code, minlength=n_seg)
    name_rank = np.empty(n_prod, dtype=np.int64)
    name_rank[np.argsort(np.array(pnames, dtype=object))] = np.arange(n_prod)

    def listing(
        counts: np.ndarray, amounts: np.ndarray, base: np.ndarray, *, size: int, whole: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        share = counts / max(size, 1)
        # by share of buyers, then spend, then name, so ties come out the same
        order = np.lexsort((name_rank, -amounts, -share))
        order = order[share[order] > 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = np.where(base > 0, share / base, 0.0)
        # the whole base cannot over-index against itself: it has no favourites
        if whole:
            return item_list(order, counts, share, amounts, base), []
        favourite = np.flatnonzero(
            (counts >= min_buyers)
            & (share >= FAVOURITE_MIN_SHARE)
            & (lift >= FAVOURITE_MIN_LIFT - 1e-9)
        )
        ranked = favourite[np.lexsort((name_rank[favourite], -share[favourite], -lift[favourite]))]
        return (
            item_list(order, counts, share, amounts, base),
            item_list(ranked, counts, share, amounts, base),
        )

    def item_list(picked, counts, share, amounts, base) -> list[dict[str, Any]]:
        return [
            {
                "name": pnames[j],
                "buyers": int(counts[j]),
                "buyers_share": _f(share[j]),
                "base_buyers_share": _f(base[j]),
                "lift": _f(share[j] / base[j]) if base[j] > 0 else None,
                "index": _f(100 * share[j] / base[j]) if base[j] > 0 else None,
                "amount": _f(amounts[j]),
            }
            for j in picked[:top_n]
        ]

    out = {
        str(seg_names[s]): listing(buyers[s], spend[s], base_share, size=sizes[s], whole=False)
        for s in range(n_seg)
    }
    out["all"] = listing(base_buyers, spend.sum(axis=0), base_share, size=n, whole=True)
    return out
