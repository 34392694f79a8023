"""Carry segment identity from one run to the next.

A new run's clusters are matched to the previous run's segments so that a
segment keeps its id (and its human-edited persona) while it is the same group:

1. by members: Jaccard overlap |A ∩ B| / |A ∪ B| between every new cluster and
   every old segment, paired one-to-one by the Hungarian algorithm
   (``scipy.optimize.linear_sum_assignment``); a pair counts when its overlap is
   at least ``min_jaccard``;
2. for clusters still unmatched, by centroid distance in a shared feature space
   (root-mean-square of per-feature differences divided by a per-feature scale,
   so the threshold reads in standard deviations whatever the number of
   features), again one-to-one, when within ``max_centroid_distance``.

Anything else is a new segment (mapped to None).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

NEW_CUSTOMERS = "new customers"
LEFT = "left"


@dataclass(frozen=True)
class SegmentMatch:
    new_label: Hashable
    old_key: Hashable | None
    method: str | None  # "overlap" | "centroid" | None
    jaccard: float | None
    distance: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "new_label": _key(self.new_label),
            "old_key": None if self.old_key is None else _key(self.old_key),
            "method": self.method,
            "jaccard": self.jaccard,
            "distance": self.distance,
        }


@dataclass
class MatchResult:
    mapping: dict[Hashable, Hashable | None]  # new label -> old segment key or None
    matches: list[SegmentMatch]
    jaccard: pd.DataFrame  # rows: new labels, columns: old keys

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": {_key(k): (None if v is None else _key(v)) for k, v in self.mapping.items()},
            "matches": [m.to_dict() for m in self.matches],
        }


def _key(value: Hashable) -> str | int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return str(value)


def _sorted(values) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def match_segments(
    *,
    old: pd.Series,
    new: pd.Series,
    old_centroids: pd.DataFrame | None = None,
    new_centroids: pd.DataFrame | None = None,
    scale: Mapping[str, float] | pd.Series | None = None,
    min_jaccard: float = 0.5,
    max_centroid_distance: float = 0.5,
) -> MatchResult:
    """Map every new cluster label to an old segment key, or None.

    ``old`` and ``new`` are memberships: Series indexed by customer_id whose
    values are the segment key (old run) or cluster label (new run). Customers
    present in only one run count in the union, so churned and new customers
    lower the overlap honestly.

    ``old_centroids`` / ``new_centroids`` (optional) are indexed by old key / new
    label with feature columns in a shared space, for example each segment's
    mean raw features; ``scale`` gives each feature's spread (for example the
    standard deviation of that feature over the new run's customers). Without
    ``scale`` the centroids are taken as already standardised.
    """
    old = old.dropna()
    new = new.dropna()
    old_keys = _sorted(pd.unique(old.to_numpy()))
    new_labels = _sorted(pd.unique(new.to_numpy()))

    joined = pd.concat([old.rename("old"), new.rename("new")], axis=1, join="inner")
    inter = (
        joined.groupby(["new", "old"], sort=False).size().unstack(fill_value=0)
        if len(joined)
        else pd.DataFrame()
    )
    inter = inter.reindex(index=new_labels, columns=old_keys, fill_value=0)
    new_sizes = new.value_counts().reindex(new_labels).to_numpy(dtype=np.float64)
    old_sizes = old.value_counts().reindex(old_keys).to_numpy(dtype=np.float64)
    counts = inter.to_numpy(dtype=np.float64)
    union = new_sizes[:, None] + old_sizes[None, :] - counts
    with np.errstate(divide="ignore", invalid="ignore"):
        jac = np.where(union > 0, counts / union, 0.0)
    jaccard = pd.DataFrame(jac, index=new_labels, columns=old_keys)

    mapping: dict[Hashable, Hashable | None] = dict.fromkeys(new_labels)
    info: dict[Hashable, SegmentMatch] = {}
    if len(new_labels) and len(old_keys):
        rows, cols = linear_sum_assignment(-jac)
        for r, c in zip(rows, cols, strict=True):
            if jac[r, c] >= min_jaccard:
                mapping[new_labels[r]] = old_keys[c]
                info[new_labels[r]] = SegmentMatch(
                    new_labels[r], old_keys[c], "overlap", round(float(jac[r, c]), 6), None
                )

    if old_centroids is not None and new_centroids is not None:
        _match_centroids(
            mapping,
            info,
            jac=jaccard,
            old_centroids=old_centroids,
            new_centroids=new_centroids,
            scale=scale,
            max_distance=max_centroid_distance,
        )

    matches = [info.get(label, SegmentMatch(label, None, None, None, None)) for label in new_labels]
    return MatchResult(mapping=mapping, matches=matches, jaccard=jaccard)


def _match_centroids(
    mapping: dict[Hashable, Hashable | None],
    info: dict[Hashable, SegmentMatch],
    *,
    jac: pd.DataFrame,
    old_centroids: pd.DataFrame,
    new_centroids: pd.DataFrame,
    scale: Mapping[str, float] | pd.Series | None,
    max_distance: float,
) -> None:
    taken = {v for v in mapping.values() if v is not None}
    free_new = [k for k, v in mapping.items() if v is None and k in new_centroids.index]
    free_old = [k for k in old_centroids.index if k not in taken]
    columns = [c for c in new_centroids.columns if c in old_centroids.columns]
    if not free_new or not free_old or not columns:
        return
    a = new_centroids.loc[free_new, columns].to_numpy(dtype=np.float64)
    b = old_centroids.loc[free_old, columns].to_numpy(dtype=np.float64)
    if scale is None:
        s = np.ones(len(columns))
    else:
        s = np.array([float(pd.Series(scale).get(c, np.nan)) for c in columns])
        # a feature with no spread cannot tell segments apart
        s = np.where(np.isfinite(s) & (s > 0), s, np.nan)
    diff = (a[:, None, :] - b[None, :, :]) / s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> inf below
        dist = np.sqrt(np.nanmean(diff**2, axis=2))
    dist = np.where(np.isfinite(dist), dist, np.inf)
    cost = np.where(np.isfinite(dist), dist, 1e12)
    rows, cols = linear_sum_assignment(cost)
    for r, c in zip(rows, cols, strict=True):
        if dist[r, c] <= max_distance:
            new_label, old_key = free_new[r], free_old[c]
            mapping[new_label] = old_key
            j = float(jac.loc[new_label, old_key]) if old_key in jac.columns else None
            info[new_label] = SegmentMatch(
                new_label, old_key, "centroid", j, round(float(dist[r, c]), 6)
            )


def centroids_from_profiles(profiles: Any) -> tuple[pd.DataFrame, pd.Series]:
    """Segment centroids (mean raw features) and per-feature scale from a
    ``ProfileSet`` or its stored ``to_dict()``, for the centroid fallback of
    :func:`match_segments`: old centroids from the previous run's stored
    profiles, new centroids and the scale from the new run's."""
    data = profiles.to_dict() if hasattr(profiles, "to_dict") else profiles
    rows = {
        segment["key"]: {f["feature"]: f["segment_mean"] for f in segment["features"]}
        for segment in data["segments"]
    }
    centroids = pd.DataFrame.from_dict(rows, orient="index").astype(np.float64)
    scale = pd.Series(
        {f["feature"]: f.get("base_std") for f in data["base"]["features"]}, dtype=np.float64
    )
    return centroids, scale


def migration_table(*, old: pd.Series, new: pd.Series) -> pd.DataFrame:
    """Counts of customers flowing from each old segment (rows, plus
    ``"new customers"``) to each new segment (columns, plus ``"left"``).

    ``old`` and ``new`` are memberships indexed by customer_id. Pass ``new``
    already mapped to old keys (``new.map(mapping)``, unmatched clusters given
    their new ids) so that rows and columns speak the same names.
    """
    old = old.dropna()
    new = new.dropna()
    both = pd.concat([old.rename("old"), new.rename("new")], axis=1, join="outer")
    rows = _sorted(pd.unique(old.to_numpy())) + [NEW_CUSTOMERS]
    cols = _sorted(pd.unique(new.to_numpy())) + [LEFT]
    src = both["old"].astype(object).where(both["old"].notna(), NEW_CUSTOMERS)
    dst = both["new"].astype(object).where(both["new"].notna(), LEFT)
    counts = pd.crosstab(src, dst) if len(both) else pd.DataFrame()
    table = counts.reindex(index=rows, columns=cols, fill_value=0).astype(np.int64)
    table.index.name, table.columns.name = "from", "to"
    return table


def migration_flows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The non-zero cells of a migration table as JSON-safe records."""
    out = []
    for src, row in table.iterrows():
        for dst, count in row.items():
            if count:
                out.append({"from": _key(src), "to": _key(dst), "count": int(count)})
    return out
