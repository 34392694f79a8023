"""Demand forecast: hand cases, planted trends and seasons, honest ranges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictions.ml import demand


def weekly_sales(sku: str, units: list[float], end: str = "2026-06-30") -> pd.DataFrame:
    """One row per week, the last on ``end``."""
    dates = pd.date_range(end=end, periods=len(units), freq="7D")
    return pd.DataFrame({"sku": sku, "date": dates, "units": units})


def test_steady_product_forecasts_its_level():
    f = demand.forecast_demand(weekly_sales("A", [10.0] * 30), horizon_weeks=4)
    row = f.table.iloc[0]
    assert row["forecast"] == pytest.approx(40.0)
    assert row["lower"] < 40.0 < row["upper"]
    assert row["trend"] == "steady"
    assert row["method"].startswith("ses_")
    assert row["label"].startswith("Expected 40 units in the next 4 weeks (80% range ")
    assert f.weekly["week_start"].tolist() == [
        "2026-07-01",
        "2026-07-08",
        "2026-07-15",
        "2026-07-22",
    ]
    # Ranges widen with the horizon.
    widths = (f.weekly["upper"] - f.weekly["lower"]).to_numpy()
    assert np.all(np.diff(widths) >= 0)


def test_days_are_bucketed_into_weeks_ending_on_as_of():
    sales = pd.DataFrame(
        {
            "sku": ["A"] * 4,
            "date": ["2026-06-30", "2026-06-24", "2026-06-23", "2026-07-01"],
            "units": [1, 2, 4, 100],  # the last row is after as_of
        }
    )
    skus, matrix, start = demand._weekly_matrix(
        sales, int(np.datetime64("2026-06-30", "D").astype(np.int64)), 10
    )
    assert skus.tolist() == ["A"]
    assert matrix.tolist() == [[4.0, 3.0]]  # 06-17..23, then 06-24..30
    assert start.tolist() == [0]


def test_short_history_is_labelled_and_averaged():
    f = demand.forecast_demand(weekly_sales("NEW", [3.0, 5.0, 4.0]), horizon_weeks=4)
    row = f.table.iloc[0]
    assert row["method"] == "short_history"
    assert row["forecast"] == pytest.approx(16.0)
    assert "only 3 weeks of sales, so this is the average" in row["label"]
    assert row["trend"] == "not enough history"
    assert any("fewer than 8 weeks" in note for note in f.notes)


def test_planted_rising_falling_and_steady_products_are_flagged():
    rng = np.random.default_rng(5)
    weeks = 40
    t = np.arange(weeks)
    frames = []
    for k in range(50):
        frames.append(weekly_sales(f"up{k}", rng.poisson(20 * np.where(t < 30, 1.0, 1.8)).tolist()))
        frames.append(
            weekly_sales(f"down{k}", rng.poisson(20 * np.where(t < 30, 1.0, 0.5)).tolist())
        )
        frames.append(weekly_sales(f"flat{k}", rng.poisson(np.full(weeks, 20.0)).tolist()))
    f = demand.forecast_demand(pd.concat(frames), trend_threshold=0.2)
    table = f.table.set_index("sku")
    kind = table.index.str.extract(r"^([a-z]+)", expand=False)
    share = table.groupby(kind.to_numpy())["trend"].value_counts(normalize=True)
    assert share["up"]["rising"] > 0.9
    assert share["down"]["falling"] > 0.9
    assert share["flat"]["steady"] > 0.9


def test_seasonal_products_with_two_years_use_last_year_and_ranges_hold():
    rng = np.random.default_rng(6)
    days = pd.date_range("2024-01-01", "2026-02-28", freq="D")
    t = np.arange(days.size)
    n = 150
    rate = 3.0 * (1 + 0.8 * np.sin(2 * np.pi * t / 365.25))
    units = rng.poisson(np.tile(rate, (n, 1)))
    i, j = np.nonzero(units)
    sales = pd.DataFrame(
        {"sku": np.char.add("S", i.astype(str)), "date": days[j], "units": units[i, j]}
    )
    as_of = pd.Timestamp("2026-01-31")
    f = demand.forecast_demand(sales, as_of=as_of)
    table = f.table.set_index("sku")
    assert (table["method"] == "seasonal").mean() > 0.6
    later = sales[(sales["date"] > as_of) & (sales["date"] <= as_of + pd.Timedelta(days=28))]
    actual = later.groupby("sku")["units"].sum().reindex(table.index, fill_value=0)
    inside = ((actual >= table["lower"]) & (actual <= table["upper"])).mean()
    assert 0.7 <= inside <= 0.95  # an 80% range should hold about 80% of the time
    # Without two years of history the seasonal method is not offered.
    short = demand.forecast_demand(sales[sales["date"] >= "2025-01-01"], as_of=as_of)
    assert not (short.table["method"] == "seasonal").any()


def test_flat_poisson_ranges_hold_about_80_percent():
    rng = np.random.default_rng(8)
    frames = [weekly_sales(f"P{k}", rng.poisson(12.0, 34).tolist()) for k in range(300)]
    sales = pd.concat(frames)
    cut = pd.Timestamp("2026-06-02")
    f = demand.forecast_demand(sales, as_of=cut)
    actual = (
        sales[sales["date"] > cut].groupby("sku")["units"].sum().reindex(f.table["sku"]).to_numpy()
    )
    inside = ((actual >= f.table["lower"]) & (actual <= f.table["upper"])).mean()
    assert 0.72 <= inside <= 0.95


def test_returns_reduce_a_week_and_bad_units_are_reported():
    sales = weekly_sales("A", [5.0] * 12)
    sales = pd.concat(
        [sales, pd.DataFrame({"sku": ["A"], "date": [pd.Timestamp("2026-06-30")], "units": [-9]})]
    )
    f = demand.forecast_demand(sales)
    assert f.table.iloc[0]["units_last_4_weeks"] == 15.0  # 5 + 5 + 5 + max(5 - 9, 0)
    bad = pd.DataFrame({"sku": ["A", "A"], "date": ["2026-01-01", "2026-01-02"], "units": [1, "x"]})
    with pytest.raises(ValueError, match="row 1: units is not a number"):
        demand.forecast_demand(bad)


def test_to_dict_is_json_safe():
    f = demand.forecast_demand(
        pd.concat([weekly_sales("A", [1.0] * 20), weekly_sales("B", [2.0, 0.0])])
    )
    d = f.to_dict()
    json.dumps(d, allow_nan=False)
    assert {p["sku"] for p in d["products"]} == {"A", "B"}
    assert len(d["weekly"]) == 8
