"""Loyalty arithmetic: tiers and points from an organisation's orders. No ORM here
(STYLE rule 5): `loyalty.services` reads the orders and writes the results.

Money is counted in exact integers of 1/10,000 of the currency unit (`SCALE`, the
four decimal places every amount is stored with), so a tier's threshold is
reached exactly when the sum says so, never off by a float's rounding.

- The metric is counted over the rolling period (as_of − period_days, as_of], in
  days of the organisation's time zone: `orders` = the number of purchases (paid
  orders that are no return and whose net amount is above 0; returns neither count
  nor subtract), `spend` = net revenue (returns subtract, so a return can drop a
  customer's tier).
- The tier is the highest whose threshold ≤ the metric (none below the lowest).
- Points earned = floor(points_per_unit × lifetime net spend up to as_of), never
  below 0: a return takes its points back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

SCALE = 10_000
POINTS_MAX = 2**31 - 1  # an IntegerField


def scaled(value: Decimal | float | int) -> int:
    """An amount in 1/10,000 units (exact for Decimals of four places)."""
    return int((Decimal(str(value)) * SCALE).to_integral_value())


def unscaled(value: int) -> Decimal:
    return Decimal(int(value)).scaleb(-4)


def local_days(epoch_seconds: np.ndarray, time_zone: str) -> np.ndarray:
    """The calendar day (datetime64[D]) in `time_zone` of each UTC instant."""
    if not len(epoch_seconds):
        return np.zeros(0, dtype="datetime64[D]")
    moments = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(epoch_seconds, dtype=np.int64), unit="s", utc=True)
    ).tz_convert(time_zone)
    return moments.tz_localize(None).to_numpy().astype("datetime64[D]")


@dataclass(frozen=True)
class OrderRows:
    """A customer's paid orders up to the as-of day, one entry per order."""

    customer_ids: np.ndarray  # int64
    days: np.ndarray  # datetime64[D], in the organisation's time zone
    amounts: np.ndarray  # int64, net in SCALE units (returns negative; 0: another currency)
    purchase: np.ndarray  # bool: counts as an order for the `orders` metric

    @classmethod
    def empty(cls) -> OrderRows:
        return cls(
            np.zeros(0, np.int64), np.zeros(0, "datetime64[D]"), np.zeros(0, np.int64),
            np.zeros(0, bool),
        )  # fmt: skip


@dataclass(frozen=True)
class Ladder:
    """A programme's rules, in SCALE units (an order counts SCALE)."""

    metric: str  # "orders" | "spend"
    period_days: int
    points_per_unit: int  # SCALE units
    thresholds: tuple[int, ...]  # ascending, SCALE units


@dataclass(frozen=True)
class Standings:
    """Every customer with at least one paid order up to as_of."""

    customer_ids: np.ndarray  # int64, ascending
    metric: np.ndarray  # int64, SCALE units (orders × SCALE for `orders`)
    tier: np.ndarray  # int64 index into Ladder.thresholds, -1: none
    points_earned: np.ndarray  # int64, ≥ 0


def tier_index(metric: np.ndarray, thresholds: tuple[int, ...]) -> np.ndarray:
    """The highest tier whose threshold ≤ metric (-1: below the lowest)."""
    if not thresholds:
        return np.full(len(metric), -1, dtype=np.int64)
    edges = np.asarray(thresholds, dtype=np.int64)
    return np.searchsorted(edges, np.asarray(metric, dtype=np.int64), side="right") - 1


def standings(rows: OrderRows, *, as_of: dt.date, ladder: Ladder) -> Standings:
    day = np.datetime64(as_of, "D")
    keep = rows.days <= day
    ids, days = rows.customer_ids[keep], rows.days[keep]
    amounts, purchase = rows.amounts[keep].astype(np.int64), rows.purchase[keep]
    customers, inverse = np.unique(ids, return_inverse=True)
    n = len(customers)
    lifetime = np.zeros(n, dtype=np.int64)
    np.add.at(lifetime, inverse, amounts)
    in_period = days > day - np.timedelta64(int(ladder.period_days), "D")
    metric = np.zeros(n, dtype=np.int64)
    if ladder.metric == "orders":
        np.add.at(metric, inverse[in_period & purchase], SCALE)
    else:
        np.add.at(metric, inverse[in_period], amounts[in_period])
    # floor(points_per_unit × spend) in exact integers (Python ints: no overflow)
    earned = [
        min(max((int(v) * ladder.points_per_unit) // (SCALE * SCALE), 0), POINTS_MAX)
        for v in lifetime.tolist()
    ]
    return Standings(
        customer_ids=customers.astype(np.int64),
        metric=metric,
        tier=tier_index(metric, ladder.thresholds),
        points_earned=np.asarray(earned, dtype=np.int64),
    )


@dataclass(frozen=True)
class Progress:
    next_index: int | None  # None: at the top tier
    remaining: int  # SCALE units still to reach the next tier (0 at the top)
    share: float  # 0..1 of the way to the next tier's threshold (from zero)


def progress(metric: int, thresholds: tuple[int, ...]) -> Progress:
    """How far a customer is on their way to the next tier."""
    current = int(tier_index(np.asarray([metric]), thresholds)[0])
    if current + 1 >= len(thresholds):
        return Progress(None, 0, 1.0)
    nxt = thresholds[current + 1]
    # counted from nothing, as the customer sees it: £1,500 of Gold's £3,000 is half
    # way, not "just started" because Silver begins at £1,500
    share = 1.0 if nxt <= 0 else metric / nxt
    return Progress(current + 1, max(nxt - metric, 0), float(min(max(share, 0.0), 1.0)))
