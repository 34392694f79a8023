"""Goal audiences scored here rather than by the prediction run: buy_category.

`buy_category` (`category`, `days`): the chance that each customer buys from the
category within the next `days` days. The model is learned from the past: every
customer as they were `days` days ago (the back-test cut-off), labelled by
whether they bought from the category in the `days` days that followed; then it
is applied to everyone as they are now. Features: the customer's history (orders,
spend, recency, tenure, products, recent events — `audiences/features.py`), what
they bought from the category (its share of their spend, orders with it, days
since they last bought it), and the profile and custom columns, sensitive ones
left out unless the definition says `use_sensitive`. The model is chosen and
calibrated as the response model is (`audiences.ml.choose_model`), so the scores
are probabilities and the audience's expected buyers are their sum;
`holdout_auc` is measured on back-test customers the model had not seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.exceptions import ApplicationError

from .evaluation import Evaluation, ModelInfo, progress
from .features import NS_PER_DAY, FeatureMatrix, combine, event_type_list, utc_ns
from .ml import (
    DESCRIBING,
    MIN_CLASS,
    READING,
    SCORING,
    choose_model,
    load_base,
    model_info,
    ranked,
    usable,
)

CATEGORY_EVENT_DAYS = 91


def _fail(message: str, field_name: str = "category", code: str = "invalid_definition"):
    return ApplicationError(message, {"fields": {field_name: message}}, code=code)


def category_features(
    customer_ids: np.ndarray, cutoff_ns: np.ndarray, lines: pd.DataFrame, in_category: np.ndarray
) -> FeatureMatrix:
    """What each customer bought from the category strictly before their cut-off:
    its share of their spend, orders with it, days since the last such order."""
    n = len(customer_ids)
    row = np.searchsorted(customer_ids, lines["customer_id"].to_numpy(dtype=np.int64))
    row[row >= n] = 0
    ok = customer_ids[row] == lines["customer_id"].to_numpy(dtype=np.int64) if n else row < 0
    t = utc_ns(lines["ordered_at"])
    ok[ok] = t[ok] < cutoff_ns[row[ok]]
    amount = lines["amount"].to_numpy(dtype=np.float64)
    bought = ok & (amount > 0)
    all_spend = np.bincount(row[bought], weights=amount[bought], minlength=n)
    mine = bought & in_category
    cat_spend = np.bincount(row[mine], weights=amount[mine], minlength=n)
    pairs = np.unique(
        np.stack([row[mine], lines["order_id"].to_numpy(dtype=np.int64)[mine]], axis=1), axis=0
    )
    cat_orders = np.bincount(pairs[:, 0], minlength=n).astype(np.float64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, row[mine], t[mine])
    frame = pd.DataFrame(
        {
            "category_share": np.where(all_spend > 0, cat_spend / np.maximum(all_spend, 1e-9), 0.0),
            "category_orders": cat_orders,
            "days_since_category": np.where(
                cat_orders > 0, (cutoff_ns - last) / NS_PER_DAY, np.nan
            ),
        }
    )
    readable = {
        "category_share": "Share of spend in the category",
        "category_orders": "Orders with the category",
        "days_since_category": "Days since the category was last bought",
    }
    return FeatureMatrix(customer_ids, frame, readable)


def _category_mask(lines: pd.DataFrame, category: str) -> tuple[np.ndarray, str | None, list[str]]:
    """Lines of the category (matched ignoring case and spaces), its stored name,
    and the most bought categories (to suggest)."""
    values = lines["category"]
    codes = values.cat.codes.to_numpy() if hasattr(values, "cat") else None
    cats = list(values.cat.categories) if codes is not None else []
    bought = lines["amount"].to_numpy(dtype=np.float64) > 0
    counts = pd.Series(np.asarray(values.astype(object))[bought]).value_counts()
    popular = [str(c) for c in counts.index[:5]]
    wanted = category.strip().casefold()
    matches = [i for i, c in enumerate(cats) if str(c).strip().casefold() == wanted]
    if not matches:
        return np.zeros(len(lines), dtype=bool), None, popular
    return np.isin(codes, matches), str(cats[matches[0]]), popular


def buy_category_evaluation(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    """Each customer's chance of buying from `category` within `days` (see above);
    with a sample (the preview's estimate), learned from and scoring its customers."""
    category = definition["category"]
    days = int(definition.get("days", 30))
    progress(0.05, READING)
    base = load_base(organization, event_days=days + CATEGORY_EVENT_DAYS, sample=sample)
    progress(0.35, f"Finding who bought from '{category}'")
    lines = base.lines
    in_category, name, popular = (
        _category_mask(lines, category) if len(lines) else (np.zeros(0, bool), None, [])
    )
    bought = lines["amount"].to_numpy(dtype=np.float64) > 0 if len(lines) else in_category
    if name is None or not (in_category & bought).any():
        suggestion = (
            f" Categories bought most: {', '.join(popular)}."
            if popular
            else " No order line names a category."
        )
        raise _fail(f"No one has bought from the category '{category}'.{suggestion}")
    ids = base.ids
    now_ns = base.now_ns
    start_ns = now_ns - days * NS_PER_DAY
    event_types = event_type_list(base.events)

    # the back-test: customers as they were `days` ago, and who bought the category after
    t = utc_ns(lines["ordered_at"])
    after = in_category & bought & (t >= start_ns) & (t < now_ns)
    buyers = np.isin(ids, lines["customer_id"].to_numpy(dtype=np.int64)[after])
    first_seen = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    row = np.searchsorted(ids, lines["customer_id"].to_numpy(dtype=np.int64))
    row[row >= len(ids)] = 0
    known = ids[row] == lines["customer_id"].to_numpy(dtype=np.int64) if len(ids) else row < 0
    np.minimum.at(first_seen, row[known], t[known])
    signup = base.signup_ns()
    if signup is not None:
        first_seen = np.where(
            (signup != np.iinfo(np.int64).min) & (signup < first_seen), signup, first_seen
        )
    # customers who were already customers at the cut-off (by an order or a sign-up)
    train_rows = np.flatnonzero(first_seen < start_ns)
    y = buyers[train_rows].astype(np.int64)
    positives, negatives = int(y.sum()), int((y == 0).sum())
    if positives < MIN_CLASS or negatives < MIN_CLASS:
        raise _fail(
            f"Of the {len(y):,} customers who were customers {days} days ago, {positives} bought "
            f"from '{name}' in the {days} days since and {negatives} did not; the model needs at "
            f"least {MIN_CLASS} of each. Try a longer period (days).",
            "days" if positives < MIN_CLASS else "category",
            code="not_enough_data",
        )

    def features(cutoff: np.ndarray) -> FeatureMatrix:
        return combine(
            base.features(
                cutoff, organization=organization, definition=definition, event_types=event_types
            ),
            category_features(ids, cutoff, lines, in_category),
        )

    progress(0.45, DESCRIBING)
    past = usable(features(np.full(len(ids), start_ns, dtype=np.int64)), train_rows)
    progress(0.6, "Learning who buys from the category")
    choice = choose_model(past.X[train_rows], y)
    progress(0.85, SCORING)
    current = features(np.full(len(ids), now_ns, dtype=np.int64)).select(past.columns)
    scores = choice.predict(current.X)
    info: ModelInfo = model_info(
        choice,
        current,
        positive=f"a customer who bought from '{name}'",
        negative="one who did not",
    )
    info.details.update({"category": name, "days": days, "backtest_customers": len(y)})
    return Evaluation(scores=ranked(ids, scores), model=info, probabilities=True)
