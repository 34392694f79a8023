"""Which themes are growing or shrinking, and which segments talk about which themes.

Both take plain lists (one entry per feedback item): dates, theme ids from
themes.find_themes / themes.assign (−1, "other", is counted in totals but not
reported), segment ids. Neither calls noise a trend: a change must be large, rest on
enough mentions and pass a test that it is unlikely to be chance.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from research.text.themes import OTHER

WINDOW_DAYS = 30
MIN_COUNT = 10  # mentions in the two windows together before anything is called a trend
MIN_RATIO = 1.5  # growing: at least 1.5× the mentions expected from the overall volume
SIGNIFICANCE = 0.05
MIN_SEGMENT_COUNT = 5  # mentions in a segment before its index is called notable
MIN_INDEX = 1.5  # notable: at least 1.5× (or at most 1/1.5×) as often as everyone else


def _days(dates: Sequence[Any]) -> np.ndarray:
    import pandas as pd

    values = pd.to_datetime(pd.Series(list(dates), dtype="object"), errors="coerce", utc=True)
    return values.dt.tz_convert(None).to_numpy().astype("datetime64[D]")


def _binomial_p(k: int, n: int, p: float, *, greater: bool) -> float:
    from scipy.stats import binomtest

    if n == 0:
        return 1.0
    return float(binomtest(k, n, p, alternative="greater" if greater else "less").pvalue)


def theme_trends(
    dates: Sequence[Any],
    theme_ids: Sequence[int],
    as_of: dt.date | dt.datetime | str,
    *,
    window_days: int = WINDOW_DAYS,
    min_count: int = MIN_COUNT,
) -> dict[int, dict[str, Any]]:
    """Per theme: mentions in the last ``window_days`` days up to and including
    ``as_of`` ("last_30d") and in the window before ("prev_30d"), the relative
    ``change`` (None when there were none before), each window's share of all
    feedback, and ``trend``: "growing", "shrinking", "steady" or "too few".

    A theme grows when it has at least ``min_count`` mentions in the two windows
    together, at least MIN_RATIO times the mentions the overall feedback volume would
    predict for the last window, and a one-sided binomial test (mentions in the last
    window out of both windows, against the last window's share of all feedback) is
    below 0.05; shrinking is the mirror image. Undated items are left out.
    """
    if len(dates) != len(theme_ids):
        raise ValueError("dates and theme_ids must be the same length")
    days = _days(dates)
    ids = np.asarray(list(theme_ids), dtype=np.int64)
    end = np.datetime64(_days([as_of])[0], "D")
    last = (days > end - window_days) & (days <= end)
    prev = (days > end - 2 * window_days) & (days <= end - window_days)
    total_last, total_prev = int(last.sum()), int(prev.sum())
    expected_share = total_last / (total_last + total_prev) if total_last + total_prev else 0.5
    out: dict[int, dict[str, Any]] = {}
    for theme in sorted(set(ids.tolist()) - {OTHER}):
        mine = ids == theme
        a, b = int((mine & last).sum()), int((mine & prev).sum())
        n = a + b
        change = None if b == 0 else (a - b) / b
        trend = "too few"
        if n >= min_count and 0 < expected_share < 1:
            expected = n * expected_share
            if a >= MIN_RATIO * expected and _binomial_p(a, n, expected_share, greater=True) < (
                SIGNIFICANCE
            ):
                trend = "growing"
            elif (n - a) >= MIN_RATIO * (n - expected) and _binomial_p(
                a, n, expected_share, greater=False
            ) < SIGNIFICANCE:
                trend = "shrinking"
            else:
                trend = "steady"
        out[int(theme)] = {
            "last_30d": a,
            "prev_30d": b,
            "change": None if change is None else round(change, 4),
            "share_last": round(a / total_last, 4) if total_last else 0.0,
            "share_prev": round(b / total_prev, 4) if total_prev else 0.0,
            "trend": trend,
        }
    return out


def segment_index(
    theme_ids: Sequence[int],
    segment_ids: Sequence[Hashable],
    *,
    min_count: int = MIN_SEGMENT_COUNT,
) -> dict[Hashable, dict[int, dict[str, Any]]]:
    """Per segment and theme: mentions in the segment (``count``), the share of the
    segment's feedback that mentions it (``share``), the same share among everyone
    else (``share_others``), ``index`` = share / share_others (None when no one else
    mentions it), and ``notable``: at least ``min_count`` mentions, an index of at
    least MIN_INDEX or at most 1/MIN_INDEX, and a Fisher exact test below 0.05.
    Items with no segment (None) count as "everyone else" only."""
    from scipy.stats import fisher_exact

    if len(theme_ids) != len(segment_ids):
        raise ValueError("theme_ids and segment_ids must be the same length")
    ids = np.asarray(list(theme_ids), dtype=np.int64)
    segments = list(segment_ids)
    total = len(ids)
    themes = sorted(set(ids.tolist()) - {OTHER})
    out: dict[Hashable, dict[int, dict[str, Any]]] = {}
    for segment in sorted({s for s in segments if s is not None}, key=str):
        inside = np.array([s == segment for s in segments], dtype=bool)
        size, others = int(inside.sum()), total - int(inside.sum())
        per_theme: dict[int, dict[str, Any]] = {}
        for theme in themes:
            mine = ids == theme
            a, c = int((mine & inside).sum()), int((mine & ~inside).sum())
            share = a / size if size else 0.0
            share_others = c / others if others else 0.0
            index = share / share_others if share_others > 0 else None
            notable = False
            if (
                a >= min_count
                and index is not None
                and (index >= MIN_INDEX or index <= 1 / MIN_INDEX)
            ):
                _, p = fisher_exact([[a, size - a], [c, others - c]])
                notable = bool(p < SIGNIFICANCE)
            per_theme[int(theme)] = {
                "count": a,
                "share": round(share, 4),
                "share_others": round(share_others, 4),
                "index": None if index is None else round(index, 3),
                "notable": notable,
            }
        out[segment] = per_theme
    return out


def index_sentence(segment: str, theme: str, index: float | None) -> str:
    """Plain words for an index: "Fading Small-Basket Shoppers mention delivery 3×
    more often than others"."""
    topic = theme[:1].lower() + theme[1:] if theme[1:2].islower() or len(theme) < 2 else theme
    if index is None:
        return f"Only {segment} mention {topic}."
    if math.isclose(index, 1.0, rel_tol=0.1):
        return f"{segment} mention {topic} about as often as others."
    if index > 1:
        return f"{segment} mention {topic} {_times(index)} more often than others."
    if index == 0:
        return f"{segment} never mention {topic}; others do."
    return f"{segment} mention {topic} {_times(1 / index)} less often than others."


def _times(value: float) -> str:
    rounded = round(value, 1)
    text = f"{rounded:.1f}".rstrip("0").rstrip(".")
    return f"{text}×"
