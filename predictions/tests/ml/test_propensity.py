"""Propensity: planted signal is found, probabilities are calibrated, small data is labelled."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictions.ml import propensity as pm


def planted(rng: np.random.Generator, n: int):
    """Customers whose chance to order falls with days since the last order."""
    recency = rng.exponential(60.0, n)
    frequency = (rng.poisson(3.0, n) + 1).astype(float)
    noise = rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-(1.0 - recency / 30.0 + 0.4 * frequency)))
    ordered = rng.random(n) < p
    index = pd.Index([f"c{i}" for i in range(n)], name="customer_id")
    features = pd.DataFrame(
        {"recency_days": recency, "frequency": frequency, "noise": noise, "country": "DE"},
        index=index,
    )
    return features, pd.Series(ordered, index=index), p


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(42)
    train, labels, _ = planted(rng, 4000)
    current, _, p_true = planted(rng, 3000)
    result = pm.fit_propensity(
        train_features=train, train_labels=labels, current_features=current, horizon_days=30
    )
    return result, current, p_true


def test_finds_the_planted_signal(fitted):
    result, _, p_true = fitted
    assert result.method == "gradient_boosting" and not result.is_heuristic
    assert result.calibration == "isotonic"
    # The best possible AUC with these labels is about 0.83.
    assert result.auc > 0.75
    assert result.brier < result.brier_base_rate
    ranked = [row["feature"] for row in result.feature_importance]
    assert ranked[0] == "recency_days"
    assert "noise" not in ranked[:2]
    assert "country" not in ranked  # text columns are ignored
    assert np.corrcoef(result.probabilities, p_true)[0, 1] > 0.9


def test_probabilities_are_calibrated(fitted):
    result, _, p_true = fitted
    p = result.probabilities.to_numpy()
    assert p.mean() == pytest.approx(p_true.mean(), abs=0.03)
    # Within each fifth of predicted probability, the mean matches the truth.
    fifths = np.argsort(np.argsort(p)) * 5 // p.size
    for k in range(5):
        assert p[fifths == k].mean() == pytest.approx(p_true[fifths == k].mean(), abs=0.06)


def test_reasons_are_plain_words(fitted):
    result, current, _ = fitted
    assert result.reasons.index.equals(current.index)
    likely = result.probabilities.nlargest(300).index
    top_reasons = result.reasons[likely]
    assert (top_reasons.str.contains("Ordered recently")).mean() > 0.8
    unlikely = result.probabilities.nsmallest(300).index
    assert (result.reasons[unlikely].str.contains("No recent order")).mean() > 0.8
    json.dumps(result.to_dict(), allow_nan=False)


def test_small_data_gives_labelled_heuristic_not_a_crash():
    rng = np.random.default_rng(1)
    train, labels, _ = planted(rng, 60)
    current, _, _ = planted(rng, 10)
    result = pm.fit_propensity(
        train_features=train, train_labels=labels, current_features=current, horizon_days=30
    )
    assert result.is_heuristic
    assert result.auc is None
    assert result.missing[0] == (
        "Only 60 customers had order history 30 days ago; at least 200 are needed."
    )
    assert "Until there is more data" in result.message
    assert result.probabilities.between(0, 1).all()
    assert len(result.reasons) == 10


def test_one_class_only_and_empty_inputs():
    rng = np.random.default_rng(2)
    train, _, _ = planted(rng, 500)
    nobody = pd.Series(False, index=train.index)
    result = pm.fit_propensity(
        train_features=train, train_labels=nobody, current_features=train, horizon_days=14
    )
    assert result.is_heuristic
    assert "0 of them ordered in the 14 days after and 500 did not" in result.missing[0]
    assert (result.probabilities == 0).all()

    empty = train.iloc[:0]
    result = pm.fit_propensity(
        train_features=empty,
        train_labels=pd.Series(dtype=bool),
        current_features=train.iloc[:3],
        horizon_days=14,
    )
    assert result.is_heuristic and result.probabilities.isna().all()


def test_sigmoid_calibration_on_medium_data():
    rng = np.random.default_rng(3)
    train, labels, _ = planted(rng, 600)
    result = pm.fit_propensity(
        train_features=train, train_labels=labels, current_features=train, horizon_days=30
    )
    assert result.calibration == "sigmoid"
    assert result.auc > 0.7


def test_order_features_and_labels_from_orders():
    ids = ["a", "a", "a", "b", "c", "a", "b"]
    stamps = np.array(
        [
            "2026-01-01",
            "2026-01-01",
            "2026-01-11",
            "2026-01-20",
            "2026-02-15",
            "2026-02-05",
            "2026-03-10",
        ],
        dtype="datetime64[D]",
    )
    amounts = [10.0, 5.0, 20.0, 7.0, 3.0, 1.0, 1.0]
    f = pm.order_features(ids, stamps, amounts, as_of="2026-01-31")
    assert list(f.index) == ["a", "b"]
    assert f.loc["a", "frequency"] == 2  # two orders on 01-01 are one purchase day
    assert f.loc["a", "recency_days"] == 20
    assert f.loc["a", "monetary"] == 35.0
    assert f.loc["a", "mean_days_between_orders"] == 10
    assert np.isnan(f.loc["b", "mean_days_between_orders"])
    labels = pm.labels_from_orders(ids, stamps, start="2026-01-31", horizon_days=30, index=f.index)
    assert labels.to_dict() == {"a": True, "b": False}  # b's next order is 03-10, day 38


def test_feature_phrases():
    assert pm.feature_phrase("recency_days", high=False) == "Ordered recently"
    assert pm.feature_phrase("category:Garden", high=True) == "Buys Garden"
    assert pm.feature_phrase("events:email_click", high=True) == "Recent 'email_click' activity"
    assert pm.feature_phrase("loyalty_points", high=True) == "High loyalty points"


def test_sampled_fit_still_finds_the_planted_signal_and_says_so():
    """Above `fit_sample` training customers the classifier learns from a seeded
    sample: the planted signal is still found, everyone is scored, and the result
    (what the owner's "about this model" reads) names the sample."""
    rng = np.random.default_rng(7)
    train, labels, _ = planted(rng, 6000)
    current, _, p_true = planted(rng, 3000)
    result = pm.fit_propensity(
        train_features=train,
        train_labels=labels,
        current_features=current,
        horizon_days=30,
        fit_sample=2500,
    )
    assert result.method == "gradient_boosting"
    assert result.sampled_from == 6000
    assert result.n_train + result.n_holdout == 2500
    assert "random sample of 2,500 of the 6,000" in result.message
    assert result.to_dict()["sampled_from"] == 6000
    assert result.probabilities.index.equals(current.index)  # everyone scored
    assert result.auc > 0.75
    assert [row["feature"] for row in result.feature_importance][0] == "recency_days"
    assert np.corrcoef(result.probabilities, p_true)[0, 1] > 0.9
    # under the sample size nothing is sampled
    small = pm.fit_propensity(
        train_features=train.iloc[:2000],
        train_labels=labels.iloc[:2000],
        current_features=current,
        horizon_days=30,
        fit_sample=2500,
    )
    assert small.sampled_from is None and "random sample" not in small.message


def test_reasons_match_the_per_customer_rule():
    """The reasons table (coded, looked up) says what the per-customer rule says."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 3))
    X[::17, 1] = np.nan

    class Model:
        def predict_proba(self, X):
            p = 1 / (1 + np.exp(-np.nan_to_num(X @ np.array([1.5, -1.0, 0.01]))))
            return np.c_[1 - p, p]

    model = Model()
    p_now = model.predict_proba(X)[:, 1]
    medians = pd.Series(np.nanmedian(X, axis=0))
    columns, top = ["recency_days", "frequency", "noise"], [0, 1, 2]
    got = pm._reasons(model, X, p_now, columns, top, medians, None)
    sign = np.where(p_now >= np.median(p_now), 1.0, -1.0)
    for i in range(len(X)):
        effects = []
        for j in top:
            x = X[i : i + 1].copy()
            x[0, j] = medians.iloc[j]
            effects.append((p_now[i] - model.predict_proba(x)[0, 1]) * sign[i])
        ranked = np.argsort(-np.array(effects))[:2]
        parts = [
            pm.feature_phrase(columns[top[k]], bool(X[i, top[k]] > medians.iloc[top[k]]))
            for k in ranked
            if effects[k] > 0.005 and not np.isnan(X[i, top[k]])
        ]
        assert got[i] == ("; ".join(parts) if parts else "No single feature stands out")
