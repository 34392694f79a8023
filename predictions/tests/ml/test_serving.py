"""Serving: each prediction uses the best candidate that beats its naive baseline on the
back-test, else the baseline; checked on planted structure with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from predictions.ml import serving
from predictions.ml.clv import predict_customers, summary_from_transactions
from predictions.tests.planted import ON_RHYTHM, OVERDUE, planted_orders

AS_OF = dt.date(2024, 6, 30)


def _served(orders, *, fit_bgnbd=True):
    ids, days, values = (
        orders["customer"].to_numpy(),
        orders["day"].to_numpy(),
        orders["value"].to_numpy(),
    )
    summary = summary_from_transactions(ids, days, values, as_of=AS_OF)
    current = predict_customers(summary)
    result, choice = serving.backtest_and_choose(
        ids, days, values, as_of=AS_OF, horizon_days=90, fit_bgnbd=fit_bgnbd
    )
    return current, serving.apply_choice(current, choice), result, choice


@pytest.fixture(scope="module")
def planted():
    return _served(planted_orders(as_of=AS_OF, seed=3))


def _at(predictions, customer: int) -> int:
    return int(np.flatnonzero(predictions.customer_ids == customer)[0])


def test_a_regular_long_overdue_on_their_own_rhythm_is_high_risk(planted):
    _, served, _, _ = planted
    overdue = _at(served, OVERDUE)
    assert served.risk_band[overdue] == "high"
    assert served.churn_probability[overdue] >= 0.8
    assert "No order for 100 days, usually orders every 25 days" in served.reasons[overdue]
    on_rhythm = _at(served, ON_RHYTHM)
    assert served.risk_band[on_rhythm] == "low"


def test_every_served_prediction_beats_its_baseline_on_planted_data(planted):
    _, _, result, choice = planted
    s = choice.scores
    # customers who stopped make "same pace" wrong and the time since the last order
    # alone ambiguous: models that know each customer's rhythm must win
    assert choice.served["orders"] != serving.BASELINE
    assert s["orders"][choice.served["orders"]] < s["orders"][serving.BASELINE]
    assert choice.served["value"] != serving.BASELINE
    assert s["value"][choice.served["value"]] < s["value"][serving.BASELINE]
    assert choice.served["churn"] != serving.BASELINE
    assert s["churn"][choice.served["churn"]] > s["churn"][serving.BASELINE]
    assert choice.served["propensity"] == serving.GBM
    assert s["propensity"][serving.GBM] < s["propensity"][serving.BASELINE]
    # the stored back-test describes the served order model
    assert result.mae_per_customer == pytest.approx(s["orders"][choice.served["orders"]])
    assert result.mae_per_customer < result.mae_same_pace
    assert result.served == choice.served
    assert {row["group"] for row in result.calibration_by_band} == {"low", "medium", "high"}


def test_propensity_spreads_customers_apart(planted):
    _, _, _, choice = planted
    p = np.asarray(choice.propensity)
    low, high = np.quantile(p, [0.1, 0.9])
    assert high - low > 0.4
    result = serving.propensity_result(choice)
    assert result.method == serving.GBM
    assert result.brier < result.brier_base_rate
    assert result.reasons.str.len().gt(0).all()
    # the overdue regular is unlikely to order, the one on rhythm likely
    assert result.probabilities[OVERDUE] < 0.1 < 0.5 < result.probabilities[ON_RHYTHM]


def test_the_gradient_boosted_model_is_trained_before_the_backtest_cutoff():
    orders = planted_orders(as_of=AS_OF, n_regulars=200, n_occasional=100, seed=5)
    history = serving.daily_history(
        orders["customer"].to_numpy(), orders["day"].to_numpy(), orders["value"].to_numpy()
    )
    cut = int(np.datetime64(AS_OF, "D").astype(np.int64)) - 90
    for c in serving.training_cutoffs(history, until=cut, horizon_days=90):
        assert c + 90 <= cut  # each training outcome period ends by the back-test cut-off


def test_choose_serves_the_baseline_unless_a_candidate_beats_it():
    assert serving.choose({"baseline": 0.9, "bgnbd": 0.95, "gradient_boosting": 0.9}, "mae") == (
        serving.BASELINE
    )
    assert serving.choose({"baseline": 0.9, "bgnbd": 0.8, "gradient_boosting": 0.85}, "mae") == (
        serving.BGNBD
    )
    assert serving.choose({"baseline": 0.7, "gradient_boosting": 0.69}, "auc") == serving.BASELINE
    assert serving.choose({"baseline": 0.7, "gradient_boosting": None}, "auc") == serving.BASELINE
    assert serving.choose({"baseline": 0.2, "gradient_boosting": 0.19}, "brier") == serving.GBM


def test_a_served_baseline_is_exactly_same_pace_and_says_so(monkeypatch):
    monkeypatch.setattr(serving, "choose", lambda scores, metric: serving.BASELINE)
    current, served, result, choice = _served(
        planted_orders(as_of=AS_OF, n_regulars=300, n_occasional=200, seed=7)
    )
    assert set(choice.served.values()) == {serving.BASELINE}
    x, t = current_summary_pace(current)
    pace = np.divide(x, t, out=np.zeros_like(t), where=t > 0)
    np.testing.assert_allclose(served.expected_orders[90], pace * 90)
    np.testing.assert_allclose(served.expected_orders[30], pace * 30)
    assert result.mae_per_customer == pytest.approx(result.mae_same_pace)
    assert any("No model predicted" in w and "past pace" in w for w in result.plain_words)
    prop = serving.propensity_result(choice)
    assert prop.method == serving.BASELINE
    assert np.ptp(prop.probabilities.to_numpy()) == 0  # everyone the shop's average


def current_summary_pace(current):
    """Repeat order days and days as a customer, per customer of `current`."""
    orders = planted_orders(as_of=AS_OF, n_regulars=300, n_occasional=200, seed=7)
    summary = summary_from_transactions(
        orders["customer"].to_numpy(), orders["day"].to_numpy(), None, as_of=AS_OF
    )
    assert (summary.customer_ids == current.customer_ids).all()
    return summary.frequency.astype(float), summary.T.astype(float)


def test_recency_baseline_without_a_past_period_is_still_a_probability_by_recency():
    p = serving.recency_baseline(np.zeros(0), np.zeros(0, dtype=bool), np.array([0.0, 10, 50]))
    assert np.isfinite(p).all() and (0 <= p).all() and (p < 1).all()
    assert p[0] < p[1] < p[2]


def test_a_young_shop_without_training_periods_before_the_backtest_gets_defined_figures():
    # 200 days of history: the 90-day back-test leaves no earlier period to train on
    orders = planted_orders(
        as_of=AS_OF, n_regulars=300, n_occasional=200, history_days=200, seed=11
    )
    _, served, _, choice = _served(orders)
    assert serving.GBM not in (choice.served["orders"], choice.served["churn"])
    assert np.isfinite(served.churn_probability).all()
    assert set(served.risk_band) != {"high"}
    for horizon in (30, 90, 365):
        assert np.isfinite(served.expected_orders[horizon]).all()


def test_training_on_a_sample_of_customers_still_beats_the_baselines_and_says_so(monkeypatch):
    """Above `TRAIN_CUSTOMER_SAMPLE` customers the gradient-boosted models learn from
    a seeded sample of customers: the planted rhythm is still found (every served
    model beats its baseline, the overdue regular is high risk), every customer is
    back-tested and scored, and the back-test notes say a sample was used."""
    monkeypatch.setattr(serving, "TRAIN_CUSTOMER_SAMPLE", 700)
    orders = planted_orders(as_of=AS_OF, seed=3)
    n_customers = orders["customer"].nunique()
    assert n_customers > 700
    history = serving.daily_history(
        orders["customer"].to_numpy(), orders["day"].to_numpy(), orders["value"].to_numpy()
    )
    sample = serving._training_customers(history, random_state=0)
    assert np.unique(sample.code).size == 700
    assert np.array_equal(sample.ids, history.ids)  # codes keep their customers
    current, served, _, choice = _served(orders)
    s = choice.scores
    for what, better in (("orders", np.less), ("value", np.less), ("churn", np.greater)):
        assert choice.served[what] != serving.BASELINE
        assert better(s[what][choice.served[what]], s[what][serving.BASELINE])
    assert served.risk_band[_at(served, OVERDUE)] == "high"
    assert served.customer_ids.size == current.customer_ids.size  # everyone scored
    assert choice.backtest_codes.size >= 0.9 * n_customers  # everyone with history back-tested
    assert any("random sample of 700" in note for note in choice.notes)
