"""RFM scores and the classic named RFM groups.

Scores
    R, F and M are quintile scores 1..5 computed from ranks, so they do not
    depend on the scale of the data: ``score = 1 + floor(5 * (rank - 1) / n)``
    where ``rank`` is the *lowest* rank among tied values (1 = worst). Tied
    customers therefore always share a score, and a value shared by many
    customers (say, 60% with one order) takes the score of the bottom of its
    block rather than being split arbitrarily. Recency is ranked in reverse
    (fewer days since the last order is better).

Groups
    The eleven groups follow the widely used R × FM grid (popularised by Putler's
    RFM guide), where FM is the mean of F and M rounded half up. The published
    ranges overlap; this table assigns every cell exactly once::

        FM \\ R    1               2              3                4                    5
        5         Can't lose them At risk        Loyal            Champions            Champions
        4         Can't lose them At risk        Loyal            Champions            Champions
        3         At risk         At risk        Need attention   Potential loyalists  Potential loyalists
        2         Lost            Hibernating    About to sleep   Potential loyalists  Potential loyalists
        1         Lost            Hibernating    About to sleep   Promising            New
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CHAMPIONS = "Champions"
LOYAL = "Loyal"
POTENTIAL_LOYALISTS = "Potential loyalists"
NEW = "New"
PROMISING = "Promising"
NEED_ATTENTION = "Need attention"
ABOUT_TO_SLEEP = "About to sleep"
AT_RISK = "At risk"
CANT_LOSE_THEM = "Can't lose them"
HIBERNATING = "Hibernating"
LOST = "Lost"

GROUP_DESCRIPTIONS: dict[str, str] = {
    CHAMPIONS: "Bought recently, buy often and spend the most.",
    LOYAL: "Buy regularly and spend well; respond to recognition and rewards.",
    POTENTIAL_LOYALISTS: "Recent customers with a few orders and average spend; could become loyal.",
    NEW: "Made their first purchase very recently.",
    PROMISING: "Bought fairly recently but only once or twice and spent little so far.",
    NEED_ATTENTION: "Average recency, frequency and spend; may slip away without a nudge.",
    ABOUT_TO_SLEEP: "Below-average recency and low frequency and spend; fading.",
    AT_RISK: "Used to buy often and spend well, but not for a long time.",
    CANT_LOSE_THEM: "Were among the best customers but have not bought for a long time.",
    HIBERNATING: "Last bought long ago, with few orders and low spend.",
    LOST: "Lowest recency, frequency and spend; very unlikely to return unprompted.",
}
GROUPS: tuple[str, ...] = tuple(GROUP_DESCRIPTIONS)

# GRID[fm - 1][r - 1]
_C, _L, _PL, _N, _P = CHAMPIONS, LOYAL, POTENTIAL_LOYALISTS, NEW, PROMISING
_NA, _AS, _AR, _CL, _H, _X = (
    NEED_ATTENTION,
    ABOUT_TO_SLEEP,
    AT_RISK,
    CANT_LOSE_THEM,
    HIBERNATING,
    LOST,
)
GRID: tuple[tuple[str, ...], ...] = (
    (_X, _H, _AS, _P, _N),  # FM 1
    (_X, _H, _AS, _PL, _PL),  # FM 2
    (_AR, _AR, _NA, _PL, _PL),  # FM 3
    (_CL, _AR, _L, _C, _C),  # FM 4
    (_CL, _AR, _L, _C, _C),  # FM 5
)


def quintile_scores(values: np.ndarray | pd.Series, *, higher_is_better: bool = True) -> np.ndarray:
    """Rank-based quintile scores 1..5 (ties share the score of their lowest rank)."""
    series = pd.Series(np.asarray(values, dtype=np.float64))
    if not higher_is_better:
        series = -series
    n = len(series)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    # a missing value ranks lowest, i.e. scores worst
    rank = series.rank(method="min", na_option="top")
    return (1 + np.floor(5 * (rank.to_numpy() - 1) / n)).astype(np.int64)


def fm_score(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Mean of F and M, rounded half up."""
    return (np.asarray(f, dtype=np.int64) + np.asarray(m, dtype=np.int64) + 1) // 2


def rfm_group(*, r: int, fm: int) -> str:
    return GRID[int(fm) - 1][int(r) - 1]


@dataclass
class RFMResult:
    """``scores`` is indexed like the input, with columns recency_days,
    frequency, monetary, r, f, m, fm, rfm (e.g. "545") and group."""

    scores: pd.DataFrame

    def summary(self) -> list[dict[str, Any]]:
        """One entry per group in the canonical order (groups with no customers
        included, with size 0), JSON-safe."""
        frame = self.scores
        total = len(frame)
        revenue = float(frame["monetary"].clip(lower=0).sum())
        grouped = frame.groupby("group", sort=False)
        sizes = grouped.size()
        rev = grouped["monetary"].sum()
        means = grouped[["recency_days", "frequency", "monetary"]].mean()
        out = []
        for name in GROUPS:
            size = int(sizes.get(name, 0))
            row: dict[str, Any] = {
                "group": name,
                "description": GROUP_DESCRIPTIONS[name],
                "size": size,
                "share_of_customers": size / total if total else 0.0,
                "share_of_revenue": float(rev.get(name, 0.0)) / revenue if revenue > 0 else 0.0,
            }
            for col in ("recency_days", "frequency", "monetary"):
                row[f"mean_{col}"] = float(means.loc[name, col]) if size else None
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"grid": [list(row) for row in GRID], "groups": self.summary()}


def rfm_scores(*, features: pd.DataFrame) -> RFMResult:
    """Score every row of ``features`` (columns ``recency_days``, ``frequency``,
    ``monetary``; for example ``FeatureSet.raw``, indexed by customer_id)."""
    missing = [c for c in ("recency_days", "frequency", "monetary") if c not in features.columns]
    if missing:
        raise ValueError(f"features is missing column(s): {', '.join(missing)}")
    recency = features["recency_days"].to_numpy(dtype=np.float64)
    frequency = features["frequency"].to_numpy(dtype=np.float64)
    monetary = features["monetary"].to_numpy(dtype=np.float64)
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    fm = fm_score(f, m)
    grid = np.array(GRID, dtype=object)
    groups = grid[fm - 1, r - 1] if len(r) else np.empty(0, dtype=object)
    scores = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "r": r,
            "f": f,
            "m": m,
            "fm": fm,
            "rfm": (r * 100 + f * 10 + m).astype(str),
            "group": pd.Categorical(groups, categories=list(GROUPS)),
        },
        index=features.index,
    )
    return RFMResult(scores=scores)
