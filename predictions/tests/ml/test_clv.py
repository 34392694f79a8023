"""BG/NBD and Gamma-Gamma: published CDNOW estimates, planted parameters, edge cases."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictions.ml import clv
from predictions.ml.minimum_data import check_minimum_data

CDNOW = Path(__file__).resolve().parents[3] / "tests" / "data" / "cdnow"


def sig(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits - 1}e}")


@pytest.fixture(scope="module")
def cdnow_transactions() -> pd.DataFrame:
    return pd.read_csv(
        CDNOW / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "customer_id": str, "date": str},
    )


@pytest.fixture(scope="module")
def cdnow_summary(cdnow_transactions) -> clv.CustomerSummary:
    dates = pd.to_datetime(cdnow_transactions["date"], format="%Y%m%d").to_numpy()
    return clv.summary_from_transactions(
        cdnow_transactions["customer_id"].to_numpy(),
        dates,
        cdnow_transactions["dollars"].to_numpy(),
        as_of=dt.date(1997, 9, 30),
        time_unit="week",
    )


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_summary) -> clv.BGNBDParams:
    s = cdnow_summary
    return clv.fit_bgnbd(s.frequency, s.recency, s.T, time_unit="week")


def test_summary_matches_published_cdnow_calibration_summary(cdnow_summary):
    published = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    s = cdnow_summary
    assert s.n_customers == 2357
    assert s.n_repeat_customers == 946
    np.testing.assert_array_equal(s.customer_ids.astype(int), published["ID"].to_numpy())
    np.testing.assert_array_equal(s.frequency, published["x"].to_numpy())
    # The published file rounds to 2 decimals.
    np.testing.assert_allclose(s.recency, published["t_x"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.T, published["T"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.monetary_value, published["zbar"], atol=0.005 + 1e-9)


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow_bgnbd):
    p = cdnow_bgnbd
    assert p.converged
    assert sig(p.r) == 0.243
    assert sig(p.alpha) == sig(4.414)
    assert sig(p.a) == 0.793
    assert sig(p.b) == sig(2.426)
    assert round(p.log_likelihood, 1) == -9582.4


def test_gamma_gamma_reproduces_fader_hardie_2013(cdnow_summary):
    s = cdnow_summary
    g = clv.fit_gamma_gamma(s.frequency, s.monetary_value)
    assert g.n == 946
    assert (sig(g.p), sig(g.q), sig(g.gamma)) == (6.25, 3.74, sig(15.44))


def test_bgnbd_on_published_rounded_summary_gives_same_estimates():
    published = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    p = clv.fit_bgnbd(published["x"], published["t_x"], published["T"])
    assert (sig(p.r), sig(p.alpha), sig(p.a), sig(p.b)) == (0.243, 4.41, 0.793, 2.43)
    g = clv.fit_gamma_gamma(published["x"], published["zbar"])
    assert (sig(g.p), sig(g.q), sig(g.gamma)) == (6.25, 3.74, 15.4)


def test_cdnow_conditional_expectation_matches_paper_worked_example(cdnow_bgnbd):
    # Fader, Hardie & Lee's note on computing E[Y(t) | x, t_x, T]: customer 1
    # of the sample (x=2, t_x=30.43, T=38.86) expects 1.226 purchases in the
    # 39-week holdout.
    one = clv.expected_purchases(cdnow_bgnbd, 39, 2, 30.43, 38.86)
    assert float(one) == pytest.approx(1.226, abs=0.001)


def test_cdnow_holdout_forecast_is_close_to_what_happened(
    cdnow_bgnbd, cdnow_summary, cdnow_transactions
):
    # What the sample's customers actually did in the 39 weeks after the
    # calibration period, counted per day like the calibration data: 1,882
    # purchase days. The model forecasts about 1,650: close, a little low, as
    # the paper's tracking plots show for this data.
    days = pd.to_datetime(cdnow_transactions["date"], format="%Y%m%d")
    holdout = cdnow_transactions.assign(day=days)[days > "1997-09-30"]
    actual = len(holdout.drop_duplicates(["customer_id", "day"]))
    assert actual == 1882
    s = cdnow_summary
    forecast = clv.expected_purchases(cdnow_bgnbd, 39, s.frequency, s.recency, s.T).sum()
    assert 0.85 * actual < forecast < actual


def test_collapsing_identical_rows_into_weights_gives_the_same_fit(cdnow_summary):
    s = cdnow_summary
    x, tx, big_t, w, _ = clv.collapse_rows(s.frequency, s.recency, s.T)
    assert x.size < s.n_customers
    p_full = clv.fit_bgnbd(s.frequency, s.recency, s.T)
    p_w = clv.fit_bgnbd(x, tx, big_t, weights=w)
    assert p_w.n == s.n_customers
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(p_w, name) == pytest.approx(getattr(p_full, name), rel=1e-5)


def test_recovers_planted_bgnbd_parameters():
    rng = np.random.default_rng(20260101)
    n = 40_000
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.0}
    x, tx, big_t = clv.simulate_bgnbd(n=n, T=rng.uniform(26.0, 78.0, n), rng=rng, **truth)
    p = clv.fit_bgnbd(x, tx, big_t)
    assert p.converged
    assert p.r == pytest.approx(truth["r"], rel=0.08)
    assert p.alpha == pytest.approx(truth["alpha"], rel=0.10)
    assert p.a == pytest.approx(truth["a"], rel=0.20)
    assert p.b == pytest.approx(truth["b"], rel=0.25)
    # The fitted model must also predict the planted process's future: compare
    # with the mean number of purchases the true parameters imply.
    t_new = 13.0
    fitted = clv.expected_purchases(p, t_new, x, tx, big_t).sum()
    true_params = clv.BGNBDParams(log_likelihood=0.0, n=n, **truth)
    planted = clv.expected_purchases(true_params, t_new, x, tx, big_t).sum()
    assert fitted == pytest.approx(planted, rel=0.03)


def test_recovers_planted_gamma_gamma_parameters():
    rng = np.random.default_rng(7)
    n = 30_000
    p_true, q_true, gamma_true = 6.0, 4.0, 20.0
    x = rng.integers(1, 12, n)
    nu = rng.gamma(q_true, 1.0 / gamma_true, n)
    # Mean of x Gamma(p, nu) spends is Gamma(p x, nu x).
    zbar = rng.gamma(p_true * x, 1.0 / (nu * x))
    g = clv.fit_gamma_gamma(x, zbar)
    # p and gamma trade off along a ridge, so each alone is loose; the mean
    # spend they imply, p * gamma / (q - 1), is pinned down tightly.
    assert g.p == pytest.approx(p_true, rel=0.12)
    assert g.q == pytest.approx(q_true, rel=0.05)
    assert g.gamma == pytest.approx(gamma_true, rel=0.15)
    assert g.population_mean_spend == pytest.approx(p_true * gamma_true / (q_true - 1), rel=0.02)
    at_truth = clv.gamma_gamma_log_likelihood([p_true, q_true, gamma_true], x, zbar).sum()
    assert g.log_likelihood >= at_truth


def test_expected_purchases_agree_with_monte_carlo():
    # Conditional expectation checked by simulation from the posterior: draw
    # customers from the prior, keep those matching a (x, t_x ~, T) history.
    params = clv.BGNBDParams(r=0.8, alpha=5.0, a=0.9, b=3.0, log_likelihood=0.0, n=0)
    unconditional = clv.expected_purchases(params, 20.0, 0, 0.0, 0.0)
    rng = np.random.default_rng(3)
    n = 400_000
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    alive_purchases = rng.poisson(lam * 20.0)
    lifetime = rng.geometric(p)
    simulated = np.minimum(alive_purchases, lifetime).mean()
    assert float(unconditional) == pytest.approx(simulated, rel=0.02)


def test_gradients_match_finite_differences(cdnow_summary):
    s = cdnow_summary
    x, tx, big_t = s.frequency.astype(float), s.recency, s.T
    objective = clv._BGNBDObjective(x, tx, big_t, np.ones_like(x))
    theta = np.log([0.3, 5.0, 0.7, 2.0])
    _, grad = objective(theta)
    eps = 1e-6
    numeric = [
        (objective(theta + eps * e)[0] - objective(theta - eps * e)[0]) / (2 * eps)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)

    repeat = s.frequency > 0
    gg = clv._GammaGammaObjective(x[repeat], s.monetary_value[repeat], np.ones(int(repeat.sum())))
    theta = np.log([5.0, 3.0, 12.0])
    _, grad = gg(theta)
    numeric = [(gg(theta + eps * e)[0] - gg(theta - eps * e)[0]) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_log_likelihood_matches_direct_formula():
    # FHL 2005 eq. 6 evaluated naively for small numbers, against the stable form.
    params = (0.5, 3.0, 0.8, 2.5)
    r, alpha, a, b = params
    cases = [(0, 0.0, 10.0), (1, 4.0, 10.0), (3, 9.5, 12.0)]
    for x, tx, big_t in cases:
        beta_ratio = math.exp(
            math.lgamma(a) + math.lgamma(b + x) - math.lgamma(a + b + x)
        ) / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        nbd = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
        like = beta_ratio * nbd / (alpha + big_t) ** (r + x)
        if x > 0:
            beta2 = math.exp(
                math.lgamma(a + 1) + math.lgamma(b + x - 1) - math.lgamma(a + b + x)
            ) / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
            like += beta2 * nbd / (alpha + tx) ** (r + x)
        got = clv.bgnbd_log_likelihood(params, [x], [tx], [big_t])[0]
        assert got == pytest.approx(math.log(like), rel=1e-12)


def test_probability_alive_bounds_and_extremes(cdnow_bgnbd):
    p = cdnow_bgnbd
    x = np.array([0, 1, 5, 50, 500, 2])
    tx = np.array([0.0, 1.0, 30.0, 2.0, 1.0, 38.0])
    big_t = np.array([38.0, 38.0, 38.0, 1000.0, 5000.0, 38.0])
    alive = clv.probability_alive(p, x, tx, big_t)
    assert np.all((alive >= 0) & (alive <= 1))
    assert alive[0] == 1.0  # no repeat purchase: cannot have dropped out in BG/NBD
    assert alive[3] < 1e-6 and alive[4] == pytest.approx(0.0, abs=1e-12)
    assert alive[5] > alive[1]  # recent buyer more likely alive than long-silent one
    assert np.isfinite(clv.expected_purchases(p, 52, x, tx, big_t)).all()


def test_zero_repeat_customers_only_can_still_be_scored_with_population_model(cdnow_bgnbd):
    e = clv.expected_purchases(cdnow_bgnbd, [10, 20, 52], 0, 0.0, 30.0)
    assert np.all(np.diff(e) > 0) and np.all(e > 0)
    nothing = clv.probability_no_purchase(cdnow_bgnbd, 10, 0, 0.0, 30.0)
    assert 0 < nothing < 1


def test_next_purchase_time_is_the_median_wait(cdnow_bgnbd):
    p = cdnow_bgnbd
    x, tx, big_t = np.array([4, 6]), np.array([36.0, 37.0]), np.array([38.0, 38.0])
    t = clv.expected_next_purchase_time(p, x, tx, big_t)
    assert np.isfinite(t).all()
    np.testing.assert_allclose(clv.probability_no_purchase(p, t, x, tx, big_t), 0.5)
    # A customer who has probably left has no median next purchase.
    gone = clv.expected_next_purchase_time(p, 10, 2.0, 38.0)
    assert np.isinf(gone)


def test_clv_discounting(cdnow_bgnbd, cdnow_summary):
    s = cdnow_summary
    g = clv.fit_gamma_gamma(s.frequency, s.monetary_value)
    args = (cdnow_bgnbd, g, s.frequency, s.recency, s.T, s.monetary_value)
    undiscounted = clv.clv(*args, annual_discount_rate=0.0)
    discounted = clv.clv(*args, annual_discount_rate=0.10)
    assert np.all(discounted <= undiscounted + 1e-12)
    # With no discount the 12-month value is expected purchases times spend.
    year = clv.expected_purchases(
        cdnow_bgnbd, 12 * clv.DAYS_PER_MONTH / 7, s.frequency, s.recency, s.T
    )
    spend = clv.expected_spend(g, s.frequency, s.monetary_value)
    np.testing.assert_allclose(undiscounted, year * spend, rtol=1e-10)
    # Discounting a year at 10% costs between 0% and 10% of the value.
    ratio = discounted.sum() / undiscounted.sum()
    assert 1 / 1.1 < ratio < 1.0


def test_expected_spend_shrinks_towards_population_mean():
    g = clv.GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0, n=0)
    population = g.population_mean_spend
    assert population == pytest.approx(6.25 * 15.44 / 2.74)
    few, many = clv.expected_spend(g, [1, 50], [100.0, 100.0])
    assert population < few < many < 100.0
    assert clv.expected_spend(g, [0], [0.0])[0] == pytest.approx(population)


def test_summary_counts_orders_per_day_and_ignores_after_as_of():
    ids = ["a", "a", "a", "a", "b", "c", "c"]
    stamps = np.array(
        [
            "2026-01-01T09:00",
            "2026-01-01T17:00",  # same day: one purchase
            "2026-01-15T08:00",
            "2026-03-01T10:00",  # after as_of
            "2026-01-10T10:00",
            "2026-01-02T10:00",
            "2026-01-30T23:59",
        ],
        dtype="datetime64[m]",
    )
    amounts = [10.0, 5.0, 30.0, 99.0, 20.0, 8.0, 12.0]
    s = clv.summary_from_transactions(ids, stamps, amounts, as_of="2026-01-31")
    assert s.customer_ids.tolist() == ["a", "b", "c"]
    assert s.frequency.tolist() == [1, 0, 1]
    assert s.recency.tolist() == [14.0, 0.0, 28.0]
    assert s.T.tolist() == [30.0, 21.0, 29.0]
    assert s.monetary_value.tolist() == [30.0, 0.0, 12.0]
    assert s.total_spend.tolist() == [45.0, 20.0, 20.0]
    assert s.history_days == 30


def test_summary_accepts_timezone_aware_pandas_at_local_date():
    stamps = pd.Series(pd.to_datetime(["2026-01-01T23:30", "2026-01-02T00:30"])).dt.tz_localize(
        "Europe/Berlin"
    )
    s = clv.summary_from_transactions([1, 1], stamps, [1.0, 1.0], as_of="2026-01-10")
    assert s.frequency.tolist() == [1]


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="recency"):
        clv.fit_bgnbd([1], [5.0], [3.0])
    with pytest.raises(ValueError, match="whole number"):
        clv.fit_bgnbd([1.5], [1.0], [3.0])
    with pytest.raises(ValueError, match="time_unit"):
        clv.fit_bgnbd([1], [1.0], [3.0], time_unit="month")  # type: ignore[arg-type]


def test_predict_customers_on_cdnow(cdnow_summary):
    pred = clv.predict_customers(cdnow_summary, churn_horizon_days=90)
    assert pred.method == "bgnbd+gamma_gamma"
    assert pred.data_check.ok
    n = cdnow_summary.n_customers
    for h in (30, 90, 365):
        assert pred.expected_orders[h].shape == (n,)
    assert np.all(pred.expected_orders[30] <= pred.expected_orders[90] + 1e-12)
    assert np.all((pred.churn_probability >= 0) & (pred.churn_probability <= 1))
    assert set(pred.risk_band) <= {"low", "medium", "high"}
    assert len(pred.reasons) == n
    # Customer 1 of the sample (x=2, last order 8 weeks before the end).
    # Customer 1 of the sample: x=2, t_x=213 days, T=272 days.
    assert pred.risk_band[0] == "medium"
    assert pred.reasons[0] == "Last order 59 days ago; orders only about every 106 days"
    # Customer 2: one repeat 12 days after the first order, then 260 days of silence.
    assert pred.risk_band[1] == "high" and pred.p_alive[1] < 0.25
    assert pred.reasons[1] == "No order for 260 days, usually orders every 12 days"
    assert np.isnat(pred.next_order_date[1])
    model = pred.model_dict()
    assert model["time_unit"] == "week" and set(model["params"]) == {"r", "alpha", "a", "b"}
    assert set(model["spend_params"]) == {"p", "q", "gamma"}


def test_predict_customers_falls_back_to_labelled_heuristic_on_small_data():
    rng = np.random.default_rng(0)
    n = 60
    ids = np.repeat(np.arange(n), 2)
    days = rng.integers(0, 60, ids.size)
    stamps = np.datetime64("2026-01-01") + days.astype("timedelta64[D]")
    s = clv.summary_from_transactions(ids, stamps, np.full(ids.size, 10.0), as_of="2026-03-01")
    pred = clv.predict_customers(s)
    assert pred.method == "heuristic"
    assert not pred.data_check.ok
    message = pred.data_check.message
    assert "ordered more than once" in message and "at least 100" in message
    assert "at least 90" in message
    assert np.isnan(pred.p_alive).all()
    assert np.all(pred.expected_orders[90] >= 0)
    assert pred.model_dict()["kind"] == "heuristic"


def test_minimum_data_rules():
    ok = check_minimum_data(n_customers=500, n_repeat_customers=150, history_days=200)
    assert ok.ok and ok.missing == []
    bad = check_minimum_data(n_customers=500, n_repeat_customers=1, history_days=30)
    assert not bad.ok
    assert bad.missing == [
        "Only 1 customer has ordered more than once; the models need at least 100.",
        "The order history covers 30 days; the models need at least 90.",
    ]
    assert check_minimum_data(n_customers=0, n_repeat_customers=0, history_days=0).missing == [
        "There are no orders yet."
    ]


def test_risk_band_thresholds():
    bands = clv.risk_band([0.0, 0.49, 0.5, 0.79, 0.8, 1.0])
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]


def test_reasons_read_naturally():
    reasons = clv.churn_reasons(
        frequency=[0, 4, 4],
        recency_days=[0.0, 140.0, 140.0],
        days_since_last=np.array([142.0, 142.0, 3.0]),
        bands=np.array(["high", "high", "low"], dtype=object),
    )
    assert reasons == [
        "Only one order so far, 142 days ago",
        "No order for 142 days, usually orders every 35 days",
        "Last order 3 days ago, usually orders every 35 days",
    ]


def test_no_dropout_data_gives_the_nbd_limit():
    # Customers who never leave: the fit runs to the no-dropout edge and the
    # forecasts become the NBD ones, (r + x) / (alpha + T) per unit of time.
    rng = np.random.default_rng(4)
    n = 5000
    big_t = rng.uniform(20.0, 60.0, n)
    x = rng.poisson(rng.gamma(0.8, 1.0 / 10.0, n) * big_t)
    tx = np.where(x > 0, big_t * rng.beta(np.maximum(x, 1), 1), 0.0)
    p = clv.fit_bgnbd(x, tx, big_t)
    assert p.converged
    alive = clv.probability_alive(p, x, tx, big_t)
    assert np.quantile(alive, 0.05) > 0.95
    nbd = (p.r + x) / (p.alpha + big_t) * 10.0
    got = clv.expected_purchases(p, 10.0, x, tx, big_t)
    assert got.sum() == pytest.approx(nbd.sum(), rel=0.02)
    assert p.r == pytest.approx(0.8, rel=0.1) and p.alpha == pytest.approx(10.0, rel=0.15)


def test_no_orders_at_all_gives_an_empty_labelled_result():
    s = clv.summary_from_transactions(
        np.array([], dtype=str), np.array([], dtype="datetime64[D]"), [], as_of="2026-01-01"
    )
    pred = clv.predict_customers(s)
    assert pred.method == "heuristic"
    assert pred.data_check.missing == ["There are no orders yet."]
    assert pred.customer_ids.size == 0 and pred.reasons == []
