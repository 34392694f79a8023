"""Purchase propensity: P(customer orders in the next N days) from customer features.

Trained on the past: features as of (cut-off - N days) and the label "ordered in
the N days after that". The service builds both feature frames (with
``segmentation.ml.features`` or :func:`order_features` here) and the labels
(:func:`labels_from_orders`), then calls :func:`fit_propensity`.

The classifier is scikit-learn's histogram gradient boosting (handles missing
values and unscaled columns), wrapped in ``CalibratedClassifierCV`` so that the
probabilities can be read as probabilities. Quality is measured on a held-out
quarter of the training customers before the final model is refitted on all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from predictions.ml.clv import to_day, to_day_numbers

MIN_TRAIN_ROWS = 200
MIN_CLASS_COUNT = 20
# Isotonic calibration overfits small samples; below this many training rows
# the two-parameter sigmoid is the safer choice.
ISOTONIC_MIN_ROWS = 1000
# Per-customer reasons look at the most important features only: each costs one
# extra prediction pass over all customers.
REASON_FEATURES = 5
# The classifier learns from at most this many training customers, a seeded
# random sample (every customer is still scored): the fit's cost stops growing
# with the organisation, and its quality is long settled at this size. The model
# says so (`sampled_from`, and the message the owner reads).
FIT_SAMPLE = 100_000

# (phrase when the customer's value is high, phrase when it is low)
KNOWN_PHRASES: dict[str, tuple[str, str]] = {
    "recency_days": ("No recent order", "Ordered recently"),
    "frequency": ("Orders often", "Few orders so far"),
    "monetary": ("Spends a lot", "Low total spend"),
    "avg_basket_value": ("Large orders", "Small orders"),
    "avg_basket_size": ("Many items per order", "Few items per order"),
    "mean_days_between_orders": ("Long gaps between orders", "Short gaps between orders"),
    "tenure_days": ("Long-standing customer", "New customer"),
    "return_share": ("Returns a lot", "Rarely returns"),
}


def feature_phrase(name: str, high: bool, descriptions: Mapping[str, str] | None = None) -> str:
    """Plain words for "this customer's <feature> is high/low"."""
    if name in KNOWN_PHRASES:
        return KNOWN_PHRASES[name][0 if high else 1]
    prefix, _, label = name.partition(":")
    if label:
        if prefix == "category":
            return f"Buys {label}" if high else f"Rarely buys {label}"
        if prefix == "channel":
            return f"Orders via {label}" if high else f"Rarely orders via {label}"
        if prefix == "events":
            return f"Recent '{label}' activity" if high else f"No recent '{label}' activity"
    text = (descriptions or {}).get(name) or name.replace("_", " ")
    return f"High {text}" if high else f"Low {text}"


@dataclass
class PropensityResult:
    """Probabilities for the current customers and how far to trust them.

    ``method`` is ``"gradient_boosting"`` or ``"heuristic"``; the heuristic
    comes with ``missing`` naming what the data lacks. ``auc`` and ``brier``
    are measured on held-out training customers; ``brier_base_rate`` is the
    Brier score of predicting the base rate for everyone, the bar to beat.
    """

    method: str
    horizon_days: int
    probabilities: pd.Series
    reasons: pd.Series
    base_rate: float | None
    auc: float | None = None
    brier: float | None = None
    brier_base_rate: float | None = None
    calibration: str | None = None
    n_train: int = 0
    n_holdout: int = 0
    # training customers the sample was drawn from (None: all were used)
    sampled_from: int | None = None
    feature_importance: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def is_heuristic(self) -> bool:
        return self.method == "heuristic"

    def to_dict(self) -> dict[str, Any]:
        """Model-level figures (JSON-safe); per-customer values stay in the series."""

        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "method": self.method,
            "horizon_days": self.horizon_days,
            "base_rate": num(self.base_rate),
            "auc": num(self.auc),
            "brier": num(self.brier),
            "brier_base_rate": num(self.brier_base_rate),
            "calibration": self.calibration,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "sampled_from": self.sampled_from,
            "n_scored": int(self.probabilities.size),
            "feature_importance": self.feature_importance,
            "missing": list(self.missing),
            "message": self.message,
        }


def order_features(customer_ids: Any, timestamps: Any, amounts: Any, *, as_of: Any) -> pd.DataFrame:
    """Minimal recency / frequency / spend features from orders up to ``as_of``.

    Column names match ``segmentation.ml.features`` so the same plain reasons
    apply. Frequency counts purchase days, like the CLV model.
    """
    ids = np.asarray(customer_ids)
    days = to_day_numbers(timestamps)
    values = np.asarray(amounts, dtype=np.float64)
    cut = int(to_day(as_of).astype(np.int64))
    keep = days <= cut
    frame = pd.DataFrame({"c": ids[keep], "d": days[keep], "v": values[keep]})
    per_day = frame.groupby(["c", "d"], sort=True)["v"].sum().reset_index()
    g = per_day.groupby("c", sort=True)
    first, last, n = g["d"].min(), g["d"].max(), g.size()
    monetary = g["v"].sum()
    out = pd.DataFrame(
        {
            "recency_days": (cut - last).astype(np.float64),
            "frequency": n.astype(np.float64),
            "monetary": monetary,
            "avg_basket_value": monetary / n,
            "tenure_days": (cut - first).astype(np.float64),
            "mean_days_between_orders": ((last - first) / (n - 1)).where(n > 1),
        }
    )
    out.index.name = "customer_id"
    return out


def labels_from_orders(
    customer_ids: Any, timestamps: Any, *, start: Any, horizon_days: int, index: pd.Index
) -> pd.Series:
    """True for customers in ``index`` with an order in (start, start + horizon_days]."""
    ids = np.asarray(customer_ids)
    days = to_day_numbers(timestamps)
    s = int(to_day(start).astype(np.int64))
    window = (days > s) & (days <= s + horizon_days)
    buyers = pd.Index(pd.unique(ids[window]))
    return pd.Series(index.isin(buyers), index=index, name="ordered")


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    numeric = frame.select_dtypes(include=["number", "bool"]).astype(np.float64)
    return numeric.replace([np.inf, -np.inf], np.nan)


def _heuristic(
    *,
    train: pd.DataFrame,
    labels: pd.Series,
    current: pd.DataFrame,
    horizon_days: int,
    missing: list[str],
) -> PropensityResult:
    """Share of similar past customers who ordered: by recency fifth if possible."""
    base_rate = float(labels.mean()) if len(labels) else None
    probs = pd.Series(np.nan if base_rate is None else base_rate, index=current.index)
    reasons = pd.Series("Based on how many customers ordered before", index=current.index)
    how = "the share of all customers who ordered"
    if (
        base_rate is not None
        and "recency_days" in train.columns
        and "recency_days" in current.columns
        and len(train) >= 50
    ):
        edges = np.unique(np.nanquantile(train["recency_days"], [0.2, 0.4, 0.6, 0.8]))
        past_group = np.searchsorted(edges, train["recency_days"].to_numpy(), side="right")
        now_group = np.searchsorted(edges, current["recency_days"].to_numpy(), side="right")
        rates = (
            pd.Series(labels.to_numpy(dtype=np.float64))
            .groupby(past_group)
            .mean()
            .reindex(range(edges.size + 1))
            .fillna(base_rate)
        )
        probs = pd.Series(rates.to_numpy()[now_group], index=current.index)
        reasons = pd.Series(
            "Based on customers whose last order was about as long ago", index=current.index
        )
        how = "the share of past customers with a similar time since their last order who ordered"
    message = (
        " ".join(missing)
        + f" Until there is more data, the chance to order in the next {horizon_days} days is "
        + how
        + "."
    )
    return PropensityResult(
        method="heuristic",
        horizon_days=horizon_days,
        probabilities=probs.rename("probability"),
        reasons=reasons.rename("reason"),
        base_rate=base_rate,
        n_train=len(labels),
        missing=missing,
        message=message,
    )


def _classifier(random_state: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.08,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping="auto",
        random_state=random_state,
    )


def fit_propensity(
    *,
    train_features: pd.DataFrame,
    train_labels: pd.Series,
    current_features: pd.DataFrame,
    horizon_days: int,
    descriptions: Mapping[str, str] | None = None,
    random_state: int = 0,
    min_train_rows: int = MIN_TRAIN_ROWS,
    min_class_count: int = MIN_CLASS_COUNT,
    n_threads: int | None = 1,
    fit_sample: int = FIT_SAMPLE,
) -> PropensityResult:
    """Train on past features and labels, score the current features.

    ``train_features`` and ``current_features`` are indexed by customer id with
    numeric columns (others are ignored); ``train_labels`` is indexed like
    ``train_features``. Never raises on small data: returns a result flagged
    heuristic with ``missing`` saying what is short.

    ``n_threads`` caps the OpenMP threads of the gradient boosting (None: all
    cores). One by default: jobs share a small machine with other workers, and
    OpenMP threads spinning against busy cores made a 4,000-customer fit take
    17 s instead of 1.3 s.

    Above ``fit_sample`` training customers the classifier learns from a seeded
    random sample of that many (``random_state``); every current customer is
    scored, and the result names the population sampled (``sampled_from``).
    """
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _fit_propensity(
            train_features=train_features,
            train_labels=train_labels,
            current_features=current_features,
            horizon_days=horizon_days,
            descriptions=descriptions,
            random_state=random_state,
            min_train_rows=min_train_rows,
            min_class_count=min_class_count,
            fit_sample=fit_sample,
        )


def _fit_propensity(
    *,
    train_features: pd.DataFrame,
    train_labels: pd.Series,
    current_features: pd.DataFrame,
    horizon_days: int,
    descriptions: Mapping[str, str] | None,
    random_state: int,
    min_train_rows: int,
    min_class_count: int,
    fit_sample: int = FIT_SAMPLE,
) -> PropensityResult:
    train = _numeric(train_features)
    labels = train_labels.reindex(train.index)
    known = labels.notna()
    train, labels = train[known], labels[known].astype(bool)
    current = _numeric(current_features).reindex(columns=train.columns)

    missing: list[str] = []
    n = len(train)
    positives = int(labels.sum())
    negatives = n - positives
    if train.shape[1] == 0:
        missing.append("There are no numeric customer features to learn from.")
    if n < min_train_rows:
        missing.append(
            f"Only {n} customers had order history {horizon_days} days ago; "
            f"at least {min_train_rows} are needed."
        )
    if positives < min_class_count or negatives < min_class_count:
        missing.append(
            f"{positives} of them ordered in the {horizon_days} days after and {negatives} "
            f"did not; at least {min_class_count} of each are needed."
        )
    if missing:
        return _heuristic(
            train=train,
            labels=labels,
            current=current,
            horizon_days=horizon_days,
            missing=missing,
        )

    X, y = train.to_numpy(), labels.to_numpy(dtype=np.int64)
    sampled_from = None
    if len(y) > fit_sample:
        sampled_from = int(len(y))
        keep = np.sort(
            np.random.default_rng(random_state).choice(len(y), fit_sample, replace=False)
        )
        X, y = X[keep], y[keep]
    X_fit, X_hold, y_fit, y_hold = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    method = "isotonic" if len(y_fit) >= ISOTONIC_MIN_ROWS else "sigmoid"
    model = CalibratedClassifierCV(_classifier(random_state), method=method, cv=3)
    model.fit(X_fit, y_fit)
    p_hold = model.predict_proba(X_hold)[:, 1]
    base_rate = float(y.mean())
    auc = float(roc_auc_score(y_hold, p_hold))
    brier = float(brier_score_loss(y_hold, p_hold))
    brier_base = float(brier_score_loss(y_hold, np.full(y_hold.size, y_fit.mean())))

    # Permutation importance on at most 4,000 held-out rows: enough to rank the
    # features, and it keeps wide feature sets to a few seconds.
    rng = np.random.default_rng(random_state)
    take = rng.permutation(y_hold.size)[:4000]
    imp = permutation_importance(
        model,
        X_hold[take],
        y_hold[take],
        scoring="roc_auc",
        n_repeats=3,
        random_state=random_state,
    )
    columns = list(train.columns)
    order = np.argsort(-imp.importances_mean)

    final = clone(model).fit(X, y)
    X_now = current.to_numpy()
    p_now = final.predict_proba(X_now)[:, 1] if len(current) else np.zeros(0)

    medians = train.median()
    top = [j for j in order[:REASON_FEATURES] if imp.importances_mean[j] > 0]
    importance = []
    for j in order:
        name = columns[j]
        mean_imp = float(imp.importances_mean[j])
        if mean_imp <= 0:
            continue
        importance.append(
            {
                "feature": name,
                "importance": mean_imp,
                "importance_std": float(imp.importances_std[j]),
                "description": (descriptions or {}).get(name, name.replace("_", " ")),
            }
        )
    reasons = _reasons(final, X_now, p_now, columns, top, medians, descriptions)
    quality = "useful" if auc >= 0.7 else "weak" if auc >= 0.6 else "not much better than chance"
    message = (
        f"Checked on {y_hold.size:,} customers held back from training: ranking quality "
        f"(AUC) {auc:.2f}, {quality}; {round(100 * base_rate)}% of customers ordered in "
        f"{horizon_days} days."
    )
    if sampled_from is not None:
        message += (
            f" Learnt from a random sample of {len(y):,} of the {sampled_from:,} customers "
            "with history; everyone is scored."
        )
    return PropensityResult(
        method="gradient_boosting",
        horizon_days=horizon_days,
        probabilities=pd.Series(p_now, index=current.index, name="probability"),
        reasons=pd.Series(reasons, index=current.index, name="reason", dtype=object),
        base_rate=base_rate,
        auc=auc,
        brier=brier,
        brier_base_rate=brier_base,
        calibration=method,
        n_train=int(y_fit.size),
        n_holdout=int(y_hold.size),
        sampled_from=sampled_from,
        feature_importance=importance,
        message=message,
    )


def _reasons(model, X_now, p_now, columns, top, medians, descriptions) -> list[str]:
    """Up to two phrases per customer from the features that move them most.

    The effect of feature j on a customer is their probability minus the
    probability with that feature set to the training median: positive effects
    explain a high probability, negative ones a low probability.
    """
    n = X_now.shape[0]
    if n == 0 or not top:
        return ["No single feature stands out"] * n
    effects = np.empty((len(top), n))
    for k, j in enumerate(top):
        X_mod = X_now.copy()
        X_mod[:, j] = medians.iloc[j]
        effects[k] = p_now - model.predict_proba(X_mod)[:, 1]
    high = np.empty((len(top), n), dtype=bool)
    for k, j in enumerate(top):
        high[k] = X_now[:, j] > medians.iloc[j]
    phrases = {
        (k, h): feature_phrase(columns[j], h, descriptions)
        for k, j in enumerate(top)
        for h in (True, False)
    }
    # Explain in the direction of the customer's own probability.
    sign = np.where(p_now >= np.median(p_now), 1.0, -1.0)
    signed = effects * sign
    ranked = np.argsort(-signed, axis=0)[:2]
    # each customer's text is one of few combinations of phrases: coded and looked
    # up, not built customer by customer
    columns_idx = np.arange(n)
    codes = []
    for r in range(ranked.shape[0]):
        k = ranked[r]
        shown = (signed[k, columns_idx] > 0.005) & ~np.isnan(X_now[columns_idx, np.asarray(top)[k]])
        code = k * 2 + np.where(high[k, columns_idx], 0, 1)  # (k, high) as one number
        codes.append(np.where(shown, code, -1))
    while len(codes) < 2:
        codes.append(np.full(n, -1))
    width = 2 * len(top) + 1
    combo = (codes[0] + 1) * width + (codes[1] + 1)
    uniq, inverse = np.unique(combo, return_inverse=True)

    def text(value: int) -> str:
        parts = [
            phrases[(int(c) // 2, int(c) % 2 == 0)]
            for c in (value // width - 1, value % width - 1)
            if c >= 0
        ]
        return "; ".join(parts) if parts else "No single feature stands out"

    table = np.array([text(int(u)) for u in uniq], dtype=object)
    return table[inverse.reshape(-1)].tolist()
