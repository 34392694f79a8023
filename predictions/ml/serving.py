"""Which prediction to serve: candidate models against naive baselines, on the
owner's own back-test.

For each customer-facing prediction there is a naive baseline and one or more
candidate models:

| prediction | baseline | candidates | "beats the baseline" |
| --- | --- | --- | --- |
| orders in the next h days | same pace: repeat orders / days as a customer × h | BG/NBD, gradient boosting | lower MAE per customer |
| value of the next h days | same pace × the customer's average order value | BG/NBD × Gamma-Gamma, gradient boosting | lower MAE per customer |
| churn (no order in h days) | ranking by days since the last order | BG/NBD, gradient boosting | higher AUC |
| propensity (order in 30 days) | the base rate for everyone | gradient boosting | lower Brier score |

Everything is measured at the back-test cut-off ``as_of − h``: the gradient-boosted
models are trained only on periods that end by that cut-off (several cut-offs
stacked, so small shops have enough rows), then scored on what happened in the
``h`` days after it. The best candidate is served if it beats the baseline;
otherwise the baseline is served, and the page says so. The served models are
then re-trained with the newest complete period and applied as of ``as_of``.

Features come from the customer's own history only: recency, frequency, spend,
the usual gap between orders and how overdue the customer is on that rhythm,
orders in the last 30/90/180/365 days, the orders in the same window a year
before, and the shop's own seasonality (how busy the coming period was a year
ago compared with the recent one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from predictions.ml.clv import to_day, to_day_numbers

BASELINE = "baseline"
BGNBD = "bgnbd"
GBM = "gradient_boosting"

# Training rows: one per customer and training cut-off, at most this many (a
# random subset beyond it keeps the fit to about a second on 100k customers).
MAX_TRAIN_ROWS = 40_000
# Training rows are drawn from at most this many customers (a seeded random
# sample, the same at every cut-off): building features for every customer at
# six cut-offs only to keep 40,000 rows made the cost grow with the organisation.
# Back-test figures and scores still cover every customer.
TRAIN_CUSTOMER_SAMPLE = 200_000
MAX_TRAIN_CUTOFFS = 6
MIN_TRAIN_ROWS = 200
MIN_CLASS_COUNT = 20
# A training cut-off needs this much history before it.
MIN_TRAIN_HISTORY_DAYS = 30
ISOTONIC_MIN_ROWS = 2000

FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "mean_days_between_orders",
    "last_gap_days",
    "gap_variation",
    "overdue_ratio",
    "same_pace",
    "orders_last_30d",
    "orders_last_90d",
    "orders_last_180d",
    "orders_last_365d",
    "spend_last_90d",
    "orders_same_window_last_year",
    "shop_season_ratio",
)

DESCRIPTIONS = {
    "recency_days": "days since the last order",
    "frequency": "number of days with an order",
    "monetary": "total spend",
    "avg_order_value": "average spend per order day",
    "tenure_days": "days since the first order",
    "mean_days_between_orders": "usual gap between orders",
    "last_gap_days": "gap before the last order",
    "gap_variation": "how irregular the gaps are",
    "overdue_ratio": "time since the last order against the usual gap",
    "same_pace": "orders expected at the customer's past pace",
    "orders_last_30d": "orders in the last 30 days",
    "orders_last_90d": "orders in the last 90 days",
    "orders_last_180d": "orders in the last 180 days",
    "orders_last_365d": "orders in the last year",
    "spend_last_90d": "spend in the last 90 days",
    "orders_same_window_last_year": "orders in the same weeks last year",
    "shop_season_ratio": "how busy the coming weeks were last year",
}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- order history, one row per customer and day ------------------------------------------
@dataclass(frozen=True)
class DailyHistory:
    """Purchases collapsed to one row per (customer, day), sorted by customer then day."""

    ids: np.ndarray  # customer id per code
    code: np.ndarray  # int64 customer code per row
    day: np.ndarray  # int64 day number per row
    value: np.ndarray  # summed value per row
    start: int  # first day of the shop's history

    @property
    def n_customers(self) -> int:
        return int(self.ids.size)


def daily_history(customer_ids: Any, timestamps: Any, amounts: Any) -> DailyHistory:
    ids = np.asarray(customer_ids)
    days = to_day_numbers(timestamps)
    values = np.nan_to_num(np.asarray(amounts, dtype=np.float64))
    codes, uniques = pd.factorize(ids, sort=True)
    if days.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DailyHistory(np.asarray(uniques), empty, empty, np.zeros(0), 0)
    day0 = int(days.min())
    span = int(days.max()) - day0 + 1
    key = codes.astype(np.int64) * span + (days - day0)
    keys, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse, weights=values, minlength=keys.size)
    return DailyHistory(
        ids=np.asarray(uniques),
        code=keys // span,
        day=keys % span + day0,
        value=summed,
        start=day0,
    )


def customer_features(history: DailyHistory, *, cut: int, horizon_days: int) -> pd.DataFrame:
    """Features of every customer with an order on or before day ``cut``, indexed by
    customer code (position in ``history.ids``)."""
    keep = history.day <= cut
    code, day, value = history.code[keep], history.day[keep], history.value[keep]
    if code.size == 0:
        return pd.DataFrame(columns=list(FEATURES), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    ends = np.r_[starts[1:], code.size] - 1
    who = code[starts]
    n = (ends - starts + 1).astype(np.float64)
    first, last = day[starts].astype(np.float64), day[ends].astype(np.float64)
    spend = np.add.reduceat(value, starts)
    recency = cut - last
    tenure = cut - first
    repeat = n - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_gap = np.where(repeat > 0, (last - first) / np.maximum(repeat, 1), np.nan)
        prev = np.where(n > 1, day[np.maximum(ends - 1, 0)], np.nan).astype(np.float64)
        last_gap = np.where(n > 1, last - prev, np.nan)
        # squared gap before each row, zero on a customer's first row
        g2 = np.zeros(code.size)
        g2[1:] = np.where(code[1:] == code[:-1], np.diff(day).astype(np.float64) ** 2, 0.0)
        var = np.add.reduceat(g2, starts) / np.maximum(repeat, 1) - mean_gap**2
        gap_cv = np.where(repeat > 1, np.sqrt(np.maximum(var, 0.0)) / mean_gap, np.nan)
        overdue = np.where(repeat > 0, recency / np.maximum(mean_gap, 1.0), np.nan)
        pace = np.where(tenure > 0, repeat / np.maximum(tenure, 1.0) * horizon_days, 0.0)
    size = history.n_customers

    def window(lo: int, hi: int, weights=None) -> np.ndarray:
        m = (day > lo) & (day <= hi)
        return np.bincount(code[m], weights=None if weights is None else value[m], minlength=size)[
            who
        ].astype(np.float64)

    last_year = cut - 365
    if last_year - history.start >= 0:
        same_window = window(last_year, last_year + horizon_days)
        shop_next = float(
            ((history.day > last_year) & (history.day <= last_year + horizon_days)).sum()
        )
        shop_recent = float(((history.day > cut - horizon_days) & (history.day <= cut)).sum())
        season = shop_next / shop_recent if shop_recent > 0 else np.nan
    else:
        same_window = np.full(who.size, np.nan)
        season = np.nan
    frame = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": n,
            "monetary": spend,
            "avg_order_value": spend / n,
            "tenure_days": tenure,
            "mean_days_between_orders": mean_gap,
            "last_gap_days": last_gap,
            "gap_variation": gap_cv,
            "overdue_ratio": overdue,
            "same_pace": pace,
            "orders_last_30d": window(cut - 30, cut),
            "orders_last_90d": window(cut - 90, cut),
            "orders_last_180d": window(cut - 180, cut),
            "orders_last_365d": window(cut - 365, cut),
            "spend_last_90d": window(cut - 90, cut, weights=True),
            "orders_same_window_last_year": same_window,
            "shop_season_ratio": np.full(who.size, season),
        },
        index=pd.Index(who, name="code"),
    )
    return frame


def outcomes(
    history: DailyHistory, *, cut: int, horizon_days: int, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(order days, revenue) of each customer in ``codes`` in (cut, cut + horizon]."""
    m = (history.day > cut) & (history.day <= cut + horizon_days)
    size = history.n_customers
    orders = np.bincount(history.code[m], minlength=size)[codes].astype(np.float64)
    revenue = np.bincount(history.code[m], weights=history.value[m], minlength=size)[codes]
    return orders, revenue


def training_cutoffs(history: DailyHistory, *, until: int, horizon_days: int) -> list[int]:
    """Cut-offs whose outcome period ends by ``until``, newest first."""
    step = max(7, min(30, horizon_days // 2))
    out = []
    for k in range(MAX_TRAIN_CUTOFFS):
        c = until - horizon_days - k * step
        if c - history.start < MIN_TRAIN_HISTORY_DAYS:
            break
        out.append(c)
    return out


@dataclass
class TrainingSet:
    X: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    recency: np.ndarray

    @property
    def n(self) -> int:
        return int(self.orders.size)


def training_set(
    history: DailyHistory, *, until: int, horizon_days: int, random_state: int = 0
) -> TrainingSet:
    parts_x, parts_o, parts_r = [], [], []
    history = _training_customers(history, random_state=random_state)
    for c in training_cutoffs(history, until=until, horizon_days=horizon_days):
        feats = customer_features(history, cut=c, horizon_days=horizon_days)
        if len(feats) == 0:
            continue
        o, r = outcomes(history, cut=c, horizon_days=horizon_days, codes=feats.index.to_numpy())
        parts_x.append(feats.to_numpy(dtype=np.float64))
        parts_o.append(o)
        parts_r.append(r)
    if not parts_x:
        return TrainingSet(np.zeros((0, len(FEATURES))), np.zeros(0), np.zeros(0), np.zeros(0))
    X = np.concatenate(parts_x)
    orders, revenue = np.concatenate(parts_o), np.concatenate(parts_r)
    if orders.size > MAX_TRAIN_ROWS:
        take = np.random.default_rng(random_state).choice(
            orders.size, MAX_TRAIN_ROWS, replace=False
        )
        X, orders, revenue = X[take], orders[take], revenue[take]
    return TrainingSet(X=X, orders=orders, revenue=revenue, recency=X[:, 0])


def _training_customers(history: DailyHistory, *, random_state: int) -> DailyHistory:
    """The history of a seeded random sample of `TRAIN_CUSTOMER_SAMPLE` customers
    (the whole history when there are no more); codes and ids are unchanged."""
    if history.n_customers <= TRAIN_CUSTOMER_SAMPLE:
        return history
    chosen = np.zeros(history.n_customers, dtype=bool)
    chosen[
        np.random.default_rng(random_state).choice(
            history.n_customers, TRAIN_CUSTOMER_SAMPLE, replace=False
        )
    ] = True
    rows = chosen[history.code]
    return DailyHistory(
        ids=history.ids,
        code=history.code[rows],
        day=history.day[rows],
        value=history.value[rows],
        start=history.start,
    )


# --- models -------------------------------------------------------------------------------
def _usable(X: np.ndarray) -> np.ndarray:
    """Columns with at least two distinct known values in training (an all-missing
    column, such as last year's orders in a shop younger than a year, is left out)."""
    finite = np.isfinite(X)
    lo = np.where(finite, X, np.inf).min(axis=0)
    hi = np.where(finite, X, -np.inf).max(axis=0)
    return np.flatnonzero(finite.any(axis=0) & (hi > lo))


class OrdersRegressor:
    """Expected orders in the horizon: gradient boosting with a Poisson loss."""

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> OrdersRegressor:
        self.cols = _usable(X)
        self.model = _regressor(self.random_state, y.size).fit(X[:, self.cols], y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        return np.maximum(self.model.predict(X[:, self.cols]), 0.0)


# Shared settings: few, shallow trees (the fit is a small part of a run), stopped
# early on a tenth of the rows when there are enough of them.
_BOOSTING = {
    "max_iter": 80,
    "learning_rate": 0.1,
    "max_leaf_nodes": 12,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "validation_fraction": 0.15,
    "n_iter_no_change": 8,
}


def _early(n: int) -> bool:
    return n >= 2000


def _regressor(random_state: int, n: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="poisson", early_stopping=_early(n), random_state=random_state, **_BOOSTING
    )


def _classifier_model(random_state: int, n: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        early_stopping=_early(n), random_state=random_state, **_BOOSTING
    )


class CalibratedClassifier:
    """Gradient boosting fitted on three quarters of the rows, its probabilities
    calibrated on the last quarter (isotonic with enough rows, else a sigmoid)."""

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> CalibratedClassifier:
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(y.size)
        cut = int(round(0.75 * y.size))
        fit_idx, cal_idx = order[:cut], order[cut:]
        # both classes in both parts
        if len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[cal_idx])) < 2:
            fit_idx = cal_idx = order
        self.cols = _usable(X)
        X = X[:, self.cols]
        self.model = _classifier_model(self.random_state, fit_idx.size).fit(X[fit_idx], y[fit_idx])
        raw = self.model.predict_proba(X[cal_idx])[:, 1]
        self.method = "isotonic" if cal_idx.size >= ISOTONIC_MIN_ROWS else "sigmoid"
        if self.method == "isotonic":
            self.calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator.fit(raw, y[cal_idx])
        else:
            self.calibrator = LogisticRegression(C=1e4).fit(_logit(raw)[:, None], y[cal_idx])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        raw = self.model.predict_proba(X[:, self.cols])[:, 1]
        if self.method == "isotonic":
            p = self.calibrator.predict(raw)
        else:
            p = self.calibrator.predict_proba(_logit(raw)[:, None])[:, 1]
        return np.clip(p, 0.001, 0.999)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.predict(X)
        return np.column_stack([1 - p, p])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _can_classify(y: np.ndarray) -> bool:
    pos = int(y.sum())
    return y.size >= MIN_TRAIN_ROWS and pos >= MIN_CLASS_COUNT and y.size - pos >= MIN_CLASS_COUNT


def recency_baseline(train_recency: np.ndarray, train_no_order: np.ndarray, recency: np.ndarray):
    """P(no order) from the share of past customers with a similar time since their last
    order who did not order (fifths of recency): the "ranking by recency" baseline."""
    if train_recency.size == 0 or recency.size == 0:
        # no past period to learn from (a very young shop): still ordered by recency
        scale = float(np.nanmean(recency)) if recency.size else 1.0
        return 1.0 - np.exp(-np.asarray(recency, dtype=np.float64) / max(scale, 1.0))
    base = float(train_no_order.mean())
    edges = np.unique(np.nanquantile(train_recency, [0.2, 0.4, 0.6, 0.8]))
    past = np.searchsorted(edges, train_recency, side="right")
    rates = (
        pd.Series(train_no_order.astype(np.float64))
        .groupby(past)
        .mean()
        .reindex(range(edges.size + 1))
        .fillna(base)
        .to_numpy()
    )
    return rates[np.searchsorted(edges, recency, side="right")]


# --- metrics ------------------------------------------------------------------------------
def mae(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    if actual.size == 0:
        return None
    return float(np.abs(np.asarray(predicted, dtype=np.float64) - actual).mean())


def auc(score: np.ndarray, label: np.ndarray) -> float | None:
    label = np.asarray(label).astype(bool)
    if label.all() or not label.any():
        return None
    return float(roc_auc_score(label, np.nan_to_num(np.asarray(score, dtype=np.float64))))


def brier(p: np.ndarray, label: np.ndarray) -> float | None:
    if np.asarray(label).size == 0:
        return None
    return float(brier_score_loss(np.asarray(label).astype(int), np.clip(p, 0.0, 1.0)))


def same_pace(features: pd.DataFrame) -> np.ndarray:
    return features["same_pace"].to_numpy(dtype=np.float64)


def same_pace_value(features: pd.DataFrame) -> np.ndarray:
    return same_pace(features) * features["avg_order_value"].to_numpy(dtype=np.float64)


def _better(metric: str, a: float | None, b: float | None) -> bool:
    """Is ``a`` strictly better than ``b``?"""
    if a is None or b is None:
        return False
    return a > b + 1e-12 if metric == "auc" else a < b - 1e-12


def choose(scores: dict[str, float | None], metric: str) -> str:
    """The best candidate that beats the baseline on ``metric``, else the baseline."""
    best = BASELINE
    for kind, value in scores.items():
        if kind == BASELINE:
            continue
        if _better(metric, value, scores.get(best)):
            best = kind
    return best


# --- the whole decision -------------------------------------------------------------------
@dataclass
class Choice:
    """What each prediction serves, the back-test scores behind it, and the served
    values as of the back-test cut-off (for the stored back-test) and as of now."""

    horizon_days: int
    propensity_horizon_days: int
    served: dict[str, str]
    scores: dict[str, dict[str, float | None]]
    metric: dict[str, str]
    # at the back-test cut-off, aligned with ``backtest_codes``
    backtest_codes: np.ndarray
    backtest_orders: np.ndarray | None = None
    backtest_value: np.ndarray | None = None
    backtest_churn: np.ndarray | None = None
    # as of now, aligned with ``current_codes``
    current_codes: np.ndarray | None = None
    current_features: pd.DataFrame | None = None
    orders: np.ndarray | None = None  # per horizon_days
    value: np.ndarray | None = None  # per horizon_days
    churn: np.ndarray | None = None  # P(no order in horizon_days)
    propensity: np.ndarray | None = None
    propensity_model: Any = None
    propensity_features: pd.DataFrame | None = None
    propensity_train_median: pd.Series | None = None
    propensity_base_rate: float | None = None
    propensity_rows: int = 0
    propensity_calibration: str | None = None
    propensity_cutoff: Any = None
    propensity_backtest_rows: int = 0
    propensity_backtest_X: np.ndarray | None = None
    propensity_backtest_y: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    history: DailyHistory | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "served": dict(self.served),
            "horizon_days": self.horizon_days,
            "propensity_horizon_days": self.propensity_horizon_days,
            "metric": dict(self.metric),
            "scores": {k: {m: _num(v) for m, v in d.items()} for k, d in self.scores.items()},
            "notes": list(self.notes),
        }


def evaluate_and_serve(
    history: DailyHistory,
    *,
    as_of: Any,
    horizon_days: int,
    bgnbd_backtest: dict[str, np.ndarray] | None,
    propensity_horizon_days: int = 30,
    random_state: int = 0,
    n_threads: int | None = 1,
) -> Choice:
    """Back-test every candidate at ``as_of − horizon_days``, choose, and serve as of
    ``as_of``.

    ``bgnbd_backtest`` holds the BG/NBD predictions at the back-test cut-off for the
    customers with an order by then: ``customer_ids``, ``orders`` (expected orders in
    the horizon), ``value`` (expected revenue in the horizon) and ``churn`` (P(no
    order in the horizon)); None when BG/NBD could not be fitted.
    """
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _evaluate_and_serve(
            history,
            as_of=as_of,
            horizon_days=horizon_days,
            bgnbd_backtest=bgnbd_backtest,
            propensity_horizon_days=propensity_horizon_days,
            random_state=random_state,
        )


def _evaluate_and_serve(
    history, *, as_of, horizon_days, bgnbd_backtest, propensity_horizon_days, random_state
) -> Choice:
    now = int(to_day(as_of).astype(np.int64))
    h = int(horizon_days)
    cut = now - h
    feats_bt = customer_features(history, cut=cut, horizon_days=h)
    codes_bt = feats_bt.index.to_numpy()
    actual_orders, actual_revenue = outcomes(history, cut=cut, horizon_days=h, codes=codes_bt)
    no_order = actual_orders == 0
    X_bt = feats_bt.to_numpy(dtype=np.float64)
    train_bt = training_set(history, until=cut, horizon_days=h, random_state=random_state)

    pace_orders = same_pace(feats_bt)
    pace_value = same_pace_value(feats_bt)
    recency = feats_bt["recency_days"].to_numpy(dtype=np.float64)
    cand_orders: dict[str, np.ndarray] = {BASELINE: pace_orders}
    cand_value: dict[str, np.ndarray] = {BASELINE: pace_value}
    cand_churn: dict[str, np.ndarray] = {
        BASELINE: recency_baseline(train_bt.recency, train_bt.orders == 0, recency)
    }
    churn_rank: dict[str, np.ndarray] = {BASELINE: recency}
    notes: list[str] = []
    if history.n_customers > TRAIN_CUSTOMER_SAMPLE:
        notes.append(
            f"The gradient-boosted models learnt from a random sample of "
            f"{TRAIN_CUSTOMER_SAMPLE:,} of the {history.n_customers:,} customers (at most "
            f"{MAX_TRAIN_ROWS:,} training rows); every customer is back-tested and scored."
        )

    if bgnbd_backtest is not None:
        pos = pd.Index(bgnbd_backtest["customer_ids"]).get_indexer(history.ids[codes_bt])
        if (pos >= 0).all():
            cand_orders[BGNBD] = np.asarray(bgnbd_backtest["orders"])[pos]
            cand_value[BGNBD] = np.asarray(bgnbd_backtest["value"])[pos]
            cand_churn[BGNBD] = np.asarray(bgnbd_backtest["churn"])[pos]
            churn_rank[BGNBD] = cand_churn[BGNBD]

    aov_bt = _order_value(feats_bt)
    enough = train_bt.n >= MIN_TRAIN_ROWS and train_bt.orders.sum() > 0
    if enough:
        reg = OrdersRegressor(random_state).fit(train_bt.X, train_bt.orders)
        cand_orders[GBM] = reg.predict(X_bt)
        cand_value[GBM] = cand_orders[GBM] * aov_bt
    else:
        notes.append(
            f"Too few customers with {h} days of history before the back-test for the "
            "gradient-boosted model."
        )
    if _can_classify(train_bt.orders == 0):
        clf = CalibratedClassifier(random_state).fit(train_bt.X, (train_bt.orders == 0).astype(int))
        cand_churn[GBM] = clf.predict(X_bt)
        churn_rank[GBM] = cand_churn[GBM]

    scores = {
        "orders": {k: mae(v, actual_orders) for k, v in cand_orders.items()},
        "value": {k: mae(v, actual_revenue) for k, v in cand_value.items()},
        "churn": {k: auc(v, no_order) for k, v in churn_rank.items()},
    }
    scores["churn_brier"] = {k: brier(v, no_order) for k, v in cand_churn.items()}
    metric = {"orders": "mae", "value": "mae", "churn": "auc", "propensity": "brier"}
    served = {
        "orders": choose(scores["orders"], "mae"),
        "value": choose(scores["value"], "mae"),
        "churn": choose(scores["churn"], "auc"),
    }
    choice = Choice(
        horizon_days=h,
        propensity_horizon_days=propensity_horizon_days,
        served=served,
        scores=scores,
        metric=metric,
        backtest_codes=codes_bt,
        backtest_orders=cand_orders[served["orders"]],
        backtest_value=cand_value[served["value"]],
        backtest_churn=cand_churn[served["churn"]],
        notes=notes,
    )

    # --- serve as of now: retrain the served gradient-boosted models on the newest periods
    feats_now = customer_features(history, cut=now, horizon_days=h)
    X_now = feats_now.to_numpy(dtype=np.float64)
    choice.current_codes = feats_now.index.to_numpy()
    choice.current_features = feats_now
    need_gbm = GBM in served.values()
    train_now = (
        training_set(history, until=now, horizon_days=h, random_state=random_state)
        if need_gbm
        else None
    )
    orders_now = same_pace(feats_now)
    if served["orders"] == GBM or served["value"] == GBM:
        reg_now = OrdersRegressor(random_state).fit(train_now.X, train_now.orders)
        gbm_orders = reg_now.predict(X_now)
        if served["orders"] == GBM:
            orders_now = gbm_orders
    choice.orders = orders_now if served["orders"] != BGNBD else None
    if served["value"] == GBM:
        choice.value = gbm_orders * _order_value(feats_now)
    elif served["value"] == BASELINE:
        choice.value = same_pace_value(feats_now)
    if served["churn"] == GBM:
        clf_now = CalibratedClassifier(random_state).fit(
            train_now.X, (train_now.orders == 0).astype(int)
        )
        choice.churn = clf_now.predict(X_now)
    elif served["churn"] == BASELINE:
        train_rec = training_set(history, until=now, horizon_days=h, random_state=random_state)
        choice.churn = recency_baseline(
            train_rec.recency,
            train_rec.orders == 0,
            feats_now["recency_days"].to_numpy(dtype=np.float64),
        )

    _propensity(choice, history, now=now, h=propensity_horizon_days, random_state=random_state)
    return choice


def _order_value(features: pd.DataFrame) -> np.ndarray:
    """Each customer's average order value, shrunk towards the shop's by one order."""
    n = features["frequency"].to_numpy(dtype=np.float64)
    spend = features["monetary"].to_numpy(dtype=np.float64)
    total_n = float(n.sum())
    shop = float(spend.sum()) / total_n if total_n > 0 else 0.0
    return (spend + shop) / (n + 1.0)


def _propensity(choice: Choice, history: DailyHistory, *, now: int, h: int, random_state: int):
    """P(order in the next ``h`` days): gradient boosting against the base rate,
    back-tested at ``now − h``."""
    cut = now - h
    train_bt = training_set(history, until=cut, horizon_days=h, random_state=random_state)
    feats_bt = customer_features(history, cut=cut, horizon_days=h)
    actual, _ = outcomes(history, cut=cut, horizon_days=h, codes=feats_bt.index.to_numpy())
    ordered = actual > 0
    y_train = (train_bt.orders > 0).astype(int)
    base = (
        float(y_train.mean()) if y_train.size else (float(ordered.mean()) if ordered.size else 0.0)
    )
    scores: dict[str, float | None] = {BASELINE: brier(np.full(ordered.size, base), ordered)}
    auc_scores: dict[str, float | None] = {BASELINE: None}
    model = None
    if _can_classify(y_train) and ordered.size:
        model = CalibratedClassifier(random_state).fit(train_bt.X, y_train)
        p_bt = model.predict(feats_bt.to_numpy(dtype=np.float64))
        scores[GBM] = brier(p_bt, ordered)
        auc_scores[GBM] = auc(p_bt, ordered)
    served = choose(scores, "brier")
    choice.propensity_cutoff = np.datetime64(cut, "D")
    choice.propensity_backtest_rows = int(ordered.size)
    choice.propensity_backtest_X = feats_bt.to_numpy(dtype=np.float64)
    choice.propensity_backtest_y = ordered
    choice.scores["propensity"] = scores
    choice.scores["propensity_auc"] = auc_scores
    choice.served["propensity"] = served
    feats_now = customer_features(history, cut=now, horizon_days=h)
    choice.propensity_features = feats_now
    train_now = training_set(history, until=now, horizon_days=h, random_state=random_state)
    y_now = (train_now.orders > 0).astype(int)
    choice.propensity_base_rate = float(y_now.mean()) if y_now.size else base
    choice.propensity_rows = int(y_now.size)
    if served == GBM:
        final = CalibratedClassifier(random_state).fit(train_now.X, y_now)
        choice.propensity_model = final
        choice.propensity_calibration = final.method
        known = np.where(np.isfinite(train_now.X), train_now.X, np.nan)
        empty = np.isnan(known).all(axis=0)  # e.g. last year's weeks in a young shop
        known[:, empty] = 0.0
        choice.propensity_train_median = pd.Series(
            np.nanmedian(known, axis=0), index=list(FEATURES)
        )
        choice.propensity = final.predict(feats_now.to_numpy(dtype=np.float64))
    else:
        choice.propensity = np.full(len(feats_now), choice.propensity_base_rate)


# --- one call for the service layer -------------------------------------------------------
def backtest_and_choose(
    customer_ids: Any,
    timestamps: Any,
    amounts: Any,
    *,
    as_of: Any,
    horizon_days: int,
    fit_bgnbd: bool = True,
    annual_discount_rate: float = 0.10,
    propensity_horizon_days: int = 30,
    random_state: int = 0,
):
    """The BG/NBD back-test at ``as_of − horizon_days`` and the choice of what to serve.

    With ``fit_bgnbd`` (the run itself fitted BG/NBD) the back-test fits BG/NBD at the
    cut-off even where the minimum-data rules would show averages there: it tests the
    model that is served now. Returns ``(BacktestResult describing the served models,
    Choice)``.
    """
    from predictions.ml import backtest as ml_backtest
    from predictions.ml.clv import risk_band

    loose = {"min_repeat_customers": 1, "min_history_days": 1} if fit_bgnbd else {}
    bt = ml_backtest.run_backtest(
        customer_ids,
        timestamps,
        amounts,
        cutoff=to_day(as_of) - np.timedelta64(horizon_days, "D"),
        horizon_days=horizon_days,
        data_end=as_of,
        annual_discount_rate=annual_discount_rate,
        **loose,
    )
    history = daily_history(customer_ids, timestamps, amounts)
    choice = evaluate_and_serve(
        history,
        as_of=as_of,
        horizon_days=horizon_days,
        bgnbd_backtest=bt.bgnbd_arrays() if fit_bgnbd else None,
        propensity_horizon_days=propensity_horizon_days,
        random_state=random_state,
    )
    choice.history = history
    pos = pd.Index(history.ids[choice.backtest_codes]).get_indexer(bt.arrays["customer_ids"])
    churn = choice.backtest_churn[pos]
    served = ml_backtest.served_backtest(
        bt,
        served=choice.served,
        orders=choice.backtest_orders[pos],
        value=choice.backtest_value[pos],
        churn=churn,
        bands=risk_band(churn),
        scores=choice.scores,
    )
    return served, choice


def _discount_months(annual_discount_rate: float, months: int) -> float:
    monthly = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    return float(sum((1.0 + monthly) ** -m for m in range(1, months + 1)))


def apply_choice(predictions, choice: Choice, *, max_next_order_days: float = 365.0):
    """The run's predictions with the served models' figures in place of BG/NBD's
    where BG/NBD is not served. ``p_alive`` stays BG/NBD's (it is reported in "about
    this model" only). Returns a new ``CustomerPredictions``."""
    from dataclasses import replace

    from predictions.ml.clv import (
        DAYS_PER_MONTH,
        _reasons_for,
        risk_band,
        summary_from_transactions,
    )

    h = choice.horizon_days
    served = choice.served
    ids = predictions.customer_ids
    n = ids.size
    history = choice.history
    pos = pd.Index(history.ids[choice.current_codes]).get_indexer(ids)
    known = pos >= 0

    def aligned(values: np.ndarray | None, fill: float = 0.0) -> np.ndarray:
        out = np.full(n, fill, dtype=np.float64)
        if values is not None:
            out[known] = np.asarray(values, dtype=np.float64)[pos[known]]
        return out

    bgnbd_ok = predictions.method != "heuristic" and h in predictions.expected_orders
    expected = dict(predictions.expected_orders)
    next_days = predictions.next_order_days
    if served["orders"] != BGNBD:
        base = aligned(choice.orders)
        for horizon in expected:
            if served["orders"] == GBM and bgnbd_ok:
                ref = predictions.expected_orders[h]
                with np.errstate(divide="ignore", invalid="ignore"):
                    shape = np.where(
                        ref > 0, predictions.expected_orders[horizon] / ref, horizon / h
                    )
                expected[horizon] = base * shape
            else:
                expected[horizon] = base * horizon / h
        rate = base / h
        with np.errstate(divide="ignore"):
            next_days = np.where(rate > 0, math.log(2.0) / np.where(rate > 0, rate, 1.0), np.inf)
        next_days = np.where(next_days <= max_next_order_days, next_days, np.inf)
    value = predictions.predicted_value
    if served["value"] != BGNBD:
        value_h = aligned(choice.value)
        months = predictions.value_months
        linear = DAYS_PER_MONTH / h * _discount_months(predictions.annual_discount_rate, months)
        if served["value"] == GBM and bgnbd_ok:
            ref = predictions.expected_orders[h] * predictions.expected_order_value
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(ref > 0, predictions.predicted_value / ref, linear)
            value = value_h * factor
        else:
            value = value_h * linear
    churn = predictions.churn_probability
    if served["churn"] != BGNBD:
        p_h = aligned(choice.churn, fill=1.0)
        # P(no order in the churn horizon) from P(no order in h days), at a constant hazard
        churn = np.clip(p_h, 0.0, 1.0) ** (predictions.churn_horizon_days / h)
    bands = risk_band(churn)
    finite = np.isfinite(next_days)
    next_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    next_date[finite] = predictions.as_of + np.ceil(next_days[finite]).astype("timedelta64[D]")
    reasons = predictions.reasons
    if reasons and served["churn"] != BGNBD:
        # the reason sentence follows the served risk band
        summary = summary_from_transactions(
            history.ids[history.code],
            history.day.astype("datetime64[D]"),
            None,
            as_of=predictions.as_of,
        )
        to_summary = pd.Index(ids).get_indexer(summary.customer_ids)
        if (to_summary >= 0).all() and summary.n_customers == n:
            texts = np.asarray(_reasons_for(summary, bands[to_summary]), dtype=object)
            reasons = texts[pd.Index(summary.customer_ids).get_indexer(ids)].tolist()
    return replace(
        predictions,
        expected_orders=expected,
        next_order_days=next_days,
        next_order_date=next_date,
        predicted_value=value,
        churn_probability=churn,
        risk_band=bands,
        reasons=reasons,
    )


def propensity_result(choice: Choice, *, random_state: int = 0, n_threads: int | None = 1):
    """The served purchase propensity as a ``PropensityResult`` (per-customer chance,
    plain reasons and the back-test figures), indexed by customer id."""
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _propensity_result(choice, random_state=random_state)


def _propensity_result(choice: Choice, *, random_state: int):
    from predictions.ml.propensity import PropensityResult, _reasons

    h = choice.propensity_horizon_days
    feats = choice.propensity_features
    index = pd.Index(choice.history.ids[feats.index.to_numpy()], name="customer_id")
    probs = np.asarray(choice.propensity, dtype=np.float64)
    brier_scores = choice.scores.get("propensity", {})
    auc_scores = choice.scores.get("propensity_auc", {})
    base_rate = choice.propensity_base_rate
    served = choice.served.get("propensity", BASELINE)
    importance: list[dict[str, Any]] = []
    if served == GBM and choice.propensity_model is not None:
        X_now = feats.to_numpy(dtype=np.float64)
        importance = _importance(choice, random_state=random_state)
        columns = list(FEATURES)
        top = [columns.index(row["feature"]) for row in importance[:5]]
        reasons = _reasons(
            choice.propensity_model,
            X_now,
            probs,
            columns,
            top,
            choice.propensity_train_median,
            DESCRIPTIONS,
        )
        message = (
            f"Checked on the {h} days after {choice.propensity_cutoff}: these chances were "
            "closer to what customers then did than giving everyone the shop's average "
            f"({round(100 * (base_rate or 0))}% of customers order in any {h} days)."
        )
    else:
        reasons = ["The shop's average: no model did better on your own orders"] * len(probs)
        message = (
            f"No model predicted who orders in the next {h} days better than the shop's "
            f"average on your own orders, so everyone gets the average chance "
            f"({round(100 * (base_rate or 0))}%)."
        )
    return PropensityResult(
        method=served,
        horizon_days=h,
        probabilities=pd.Series(probs, index=index, name="probability"),
        reasons=pd.Series(reasons, index=index, name="reason", dtype=object),
        base_rate=base_rate,
        auc=auc_scores.get(GBM) if served == GBM else None,
        brier=brier_scores.get(served),
        brier_base_rate=brier_scores.get(BASELINE),
        calibration=choice.propensity_calibration,
        n_train=choice.propensity_rows,
        n_holdout=int(choice.propensity_backtest_rows),
        feature_importance=importance,
        message=message,
    )


def _importance(choice: Choice, *, random_state: int) -> list[dict[str, Any]]:
    """Permutation importance of the served propensity model on (at most 2,000 of) the
    back-test customers: the drop in AUC when a feature is shuffled."""
    X, y = choice.propensity_backtest_X, choice.propensity_backtest_y
    if X is None or y is None or y.all() or not y.any():
        return []
    rng = np.random.default_rng(random_state)
    take = rng.permutation(y.size)[:2000]
    X, y = X[take], y[take]
    if y.all() or not y.any():
        return []
    model = choice.propensity_model
    reference = roc_auc_score(y, model.predict(X))
    out = []
    for j, name in enumerate(FEATURES):
        if j not in set(model.cols.tolist()):
            continue
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        drop = reference - roc_auc_score(y, model.predict(shuffled))
        if drop > 0:
            out.append(
                {"feature": name, "importance": float(drop), "description": DESCRIPTIONS[name]}
            )
    return sorted(out, key=lambda row: -row["importance"])
