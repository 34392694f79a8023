"""Back-test: numbers checked against hand counts and against a planted process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictions.ml import backtest

CDNOW = Path(__file__).resolve().parents[3] / "tests" / "data" / "cdnow"
CONTRACT_KEYS = {
    "cutoff",
    "horizon_days",
    "predicted_orders",
    "actual_orders",
    "mae_per_customer",
    "top_decile_revenue_share",
}


@pytest.fixture(scope="module")
def cdnow_result() -> backtest.BacktestResult:
    tx = pd.read_csv(
        CDNOW / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "customer_id": str, "date": str},
    )
    return backtest.run_backtest(
        tx["customer_id"].to_numpy(),
        pd.to_datetime(tx["date"], format="%Y%m%d"),
        tx["dollars"].to_numpy(),
        cutoff="1997-09-30",
        horizon_days=273,
        time_unit="week",
    )


def test_cdnow_backtest_counts_what_happened(cdnow_result):
    r = cdnow_result
    assert r.method == "bgnbd+gamma_gamma"
    assert r.n_customers == 2357
    # 1,882 purchase days by the sample's customers in the 39-week holdout
    # (hand count in test_clv); nobody new: the sample is one cohort.
    assert r.actual_orders == 1882
    assert r.new_customers == 0
    assert len(r.actual_orders_per_week) == len(r.predicted_orders_per_week) == 39
    assert sum(r.actual_orders_per_week) == 1882
    assert sum(r.predicted_orders_per_week) == pytest.approx(r.predicted_orders)
    assert r.week_starts[0] == "1997-10-01" and r.week_starts[-1] == "1998-06-24"
    assert r.predicted_orders == pytest.approx(1653, abs=2)
    # The model beats "everyone keeps their past pace" per customer.
    assert r.mae_per_customer < r.mae_same_pace
    # The highest-value tenth makes far more than a tenth of the revenue.
    assert 0.3 < r.top_decile_revenue_share < 0.8


def test_cdnow_churn_risk_is_ordered_and_roughly_calibrated(cdnow_result):
    bands = {row["group"]: row for row in cdnow_result.calibration_by_band}
    assert set(bands) == {"low", "medium", "high"}
    observed = [bands[b]["observed_no_order"] for b in ("low", "medium", "high")]
    assert observed == sorted(observed)
    for row in cdnow_result.calibration_by_band:
        assert abs(row["predicted_no_order"] - row["observed_no_order"]) < 0.15
    deciles = cdnow_result.calibration_by_decile
    assert sum(row["customers"] for row in deciles) == 2357
    assert deciles[0]["observed_no_order"] < deciles[-1]["observed_no_order"]


def test_to_dict_is_json_and_has_contract_keys(cdnow_result):
    d = cdnow_result.to_dict()
    assert CONTRACT_KEYS <= set(d)
    assert d["cutoff"] == "1997-09-30" and d["horizon_days"] == 273
    json.dumps(d, allow_nan=False)
    assert d["params"]["r"] == pytest.approx(0.2426, abs=1e-4)
    assert any("1,882 orders came in" in sentence for sentence in d["plain_words"])


def test_hand_made_shop():
    # Ten customers, first orders on 2026-01-01..10. Customer "vip" orders
    # every 3 days; the rest once each. Cut-off 2026-03-31, horizon 14 days.
    ids, days, amounts = [], [], []
    start = np.datetime64("2026-01-01")
    for d in range(0, 104, 3):
        ids.append("vip")
        days.append(start + np.timedelta64(d, "D"))
        amounts.append(50.0)
    for k in range(9):
        ids.append(f"c{k}")
        days.append(start + np.timedelta64(k, "D"))
        amounts.append(20.0)
    # After the cut-off: c0 comes back once (on two orders the same day), and
    # a new customer appears.
    ids += ["c0", "c0", "new"]
    days += [np.datetime64("2026-04-02"), np.datetime64("2026-04-02"), np.datetime64("2026-04-05")]
    amounts += [15.0, 5.0, 99.0]
    r = backtest.run_backtest(
        np.array(ids),
        np.array(days, dtype="datetime64[D]"),
        np.array(amounts),
        cutoff="2026-03-31",
        horizon_days=14,
        data_end="2026-04-14",
    )
    assert r.method == "heuristic"  # one repeat customer is far too little
    assert not r.data_check["ok"]
    assert "too little history" in r.plain_words[0]
    assert r.n_customers == 10
    # vip orders on days 0, 3, ..., 102 after 01-01; the cut-off is day 89, so
    # the horizon (days 90..103, 04-01..04-14) holds days 90, 93, 96, 99, 102:
    # 5 purchase days, plus c0's one (two orders, one day).
    assert r.actual_orders == 6
    assert r.actual_orders_per_week == [4, 2]  # 04-01..07: 90, 91 (c0), 93, 96
    assert r.new_customers == 1 and r.new_customer_orders == 1
    # vip ranks first by predicted value and made 5 x 50 of the 270 revenue.
    assert r.top_decile_revenue_share == pytest.approx(250 / 270)


def test_refuses_horizon_beyond_the_data():
    with pytest.raises(ValueError, match="choose a cut-off on or before 2026-03-02"):
        backtest.run_backtest(
            ["a", "a"],
            np.array(["2026-01-01", "2026-04-01"], dtype="datetime64[D]"),
            [1.0, 1.0],
            cutoff="2026-03-15",
            horizon_days=30,
        )


def _simulate_transactions(rng, n, r, alpha, a, b, start_span, end):
    """Transactions from a BG/NBD process, in days: first purchase on a random day."""
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    t = rng.integers(0, start_span, n).astype(float)
    rows_c, rows_t = [np.arange(n)], [t.copy()]
    alive = np.ones(n, dtype=bool)
    while alive.any():
        t = t + rng.exponential(1.0 / np.maximum(lam, 1e-12))
        alive &= t < end
        rows_c.append(np.flatnonzero(alive))
        rows_t.append(t[alive])
        alive &= rng.random(n) >= p
    c = np.concatenate(rows_c)
    days = np.floor(np.concatenate(rows_t)).astype(np.int64)
    return c, days


def test_planted_process_forecast_matches_holdout():
    rng = np.random.default_rng(11)
    n = 6000
    c, days = _simulate_transactions(
        rng, n, r=0.6, alpha=40.0, a=0.8, b=4.0, start_span=180, end=540
    )
    stamps = np.datetime64("2025-01-01") + days.astype("timedelta64[D]")
    amounts = rng.gamma(4.0, 10.0, c.size)
    r = backtest.run_backtest(
        c, stamps, amounts, cutoff="2025-10-28", horizon_days=90, data_end="2026-06-24"
    )
    assert r.method == "bgnbd+gamma_gamma"
    assert r.predicted_orders == pytest.approx(r.actual_orders, rel=0.08)
    for row in r.calibration_by_band:
        assert abs(row["predicted_no_order"] - row["observed_no_order"]) < 0.06
