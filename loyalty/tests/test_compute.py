"""The loyalty arithmetic on hand-computed cases (no database)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from loyalty import compute
from loyalty.compute import SCALE, Ladder, OrderRows

AS_OF = dt.date(2026, 6, 30)
GOLD = (0, 100 * SCALE, 500 * SCALE)  # Bronze 0, Silver 100, Gold 500


def rows(entries) -> OrderRows:
    """entries: (customer, 'YYYY-MM-DD', amount, purchase)"""
    return OrderRows(
        customer_ids=np.array([e[0] for e in entries], dtype=np.int64),
        days=np.array([e[1] for e in entries], dtype="datetime64[D]"),
        amounts=np.array([compute.scaled(e[2]) for e in entries], dtype=np.int64),
        purchase=np.array([e[3] for e in entries], dtype=bool),
    )


def ladder(metric="spend", period=30, ppu="1", thresholds=GOLD) -> Ladder:
    return Ladder(metric, period, compute.scaled(ppu), thresholds)


def test_spend_tiers_and_points_with_a_return_taking_both_back():
    data = rows(
        [
            (1, "2026-06-10", "400.00", True),
            (1, "2026-06-20", "150.50", True),  # 550.50: Gold
            (2, "2026-06-10", "400.00", True),
            (2, "2026-06-20", "150.50", True),
            (2, "2026-06-25", "-150.50", False),  # returned: 400, Silver
            (3, "2026-06-01", "99.99", True),  # just below Silver
            (4, "2026-06-01", "20.00", True),
            (4, "2026-06-02", "-50.00", False),  # more returned than bought (an old order)
        ]
    )
    result = compute.standings(data, as_of=AS_OF, ladder=ladder(ppu="1.5"))
    assert result.customer_ids.tolist() == [1, 2, 3, 4]
    assert result.metric.tolist() == [5_505_000, 4_000_000, 999_900, -300_000]
    assert result.tier.tolist() == [2, 1, 0, -1]  # a net negative spend holds no tier
    # floor(1.5 × 550.50) = 825; floor(1.5 × 400) = 600; floor(1.5 × 99.99) = 149; never < 0
    assert result.points_earned.tolist() == [825, 600, 149, 0]


def test_a_threshold_is_reached_exactly_without_float_rounding():
    # 0.1 + 0.2 = 0.30000000000000004 in floats; the threshold 0.3 is met exactly
    data = rows([(1, "2026-06-01", "0.1", True), (1, "2026-06-02", "0.2", True)])
    result = compute.standings(data, as_of=AS_OF, ladder=ladder(thresholds=(3_000,)))
    assert result.tier.tolist() == [0]
    data = rows([(1, "2026-06-01", "0.1", True), (1, "2026-06-02", "0.1999", True)])
    result = compute.standings(data, as_of=AS_OF, ladder=ladder(thresholds=(3_000,)))
    assert result.tier.tolist() == [-1]


def test_orders_metric_counts_purchases_in_the_period_and_ignores_returns():
    data = rows(
        [
            (1, "2026-05-31", "10", True),  # the day the period (May 31, June 30] excludes
            (1, "2026-06-01", "10", True),  # its first day
            (1, "2026-06-30", "10", True),  # its last day
            (1, "2026-06-15", "-10", False),  # a return: neither counts nor subtracts
            (1, "2026-07-01", "10", True),  # after as_of: not read at all
        ]
    )
    result = compute.standings(
        data, as_of=AS_OF, ladder=ladder("orders", thresholds=(SCALE, 2 * SCALE, 3 * SCALE))
    )
    assert result.metric.tolist() == [2 * SCALE]
    assert result.tier.tolist() == [1]
    # points count every order up to as_of (lifetime), returns netted: 10+10+10-10
    assert result.points_earned.tolist() == [20]


def test_spend_period_boundaries_and_lifetime_points():
    data = rows(
        [
            (1, "2026-05-31", "300", True),  # outside the 30-day period, inside lifetime
            (1, "2026-06-01", "250", True),
        ]
    )
    result = compute.standings(data, as_of=AS_OF, ladder=ladder())
    assert result.metric.tolist() == [250 * SCALE]
    assert result.tier.tolist() == [1]
    assert result.points_earned.tolist() == [550]


def test_local_days_follow_the_time_zone():
    # 2026-06-01 03:30 UTC is 23:30 on 31 May in New York, 15:30 on 1 June in Auckland
    moment = int(dt.datetime(2026, 6, 1, 3, 30, tzinfo=dt.UTC).timestamp())
    ny = compute.local_days(np.array([moment]), "America/New_York")
    nz = compute.local_days(np.array([moment]), "Pacific/Auckland")
    assert ny.tolist() == [dt.date(2026, 5, 31)]
    assert nz.tolist() == [dt.date(2026, 6, 1)]
    assert compute.local_days(np.array([], dtype=np.int64), "UTC").size == 0


def test_progress_to_the_next_tier():
    silver_way = compute.progress(250 * SCALE, GOLD)  # Silver (100), Gold at 500
    assert silver_way.next_index == 2
    assert silver_way.remaining == 250 * SCALE
    assert silver_way.share == 250 / 500  # of the way to Gold, counted from nothing
    top = compute.progress(900 * SCALE, GOLD)
    assert (top.next_index, top.remaining, top.share) == (None, 0, 1.0)
    below = compute.progress(25 * SCALE, (50 * SCALE, 100 * SCALE))  # no tier yet
    assert (below.next_index, below.remaining, below.share) == (0, 25 * SCALE, 0.5)
    negative = compute.progress(-10 * SCALE, (50 * SCALE,))
    assert negative.share == 0.0 and negative.remaining == 60 * SCALE


def test_empty_orders_place_nobody():
    result = compute.standings(OrderRows.empty(), as_of=AS_OF, ladder=ladder())
    assert result.customer_ids.size == 0 and result.points_earned.size == 0
