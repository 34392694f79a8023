"""Back-test of the CLV / churn predictions: fit up to a cut-off, compare with what happened.

Only customers who had ordered by the cut-off are predicted, so orders from
customers who first appear after it are left out of both sides (and counted,
so the owner can see how much of the period they made). Orders are counted per
day, as in the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml.clv import (
    CustomerPredictions,
    TimeUnit,
    predict_customers,
    summary_from_transactions,
    to_day,
    to_day_numbers,
)
from predictions.ml.minimum_data import MIN_HISTORY_DAYS, MIN_REPEAT_CUSTOMERS


def _num(value: float) -> float | None:
    """JSON has no NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class BacktestResult:
    cutoff: np.datetime64
    horizon_days: int
    time_unit: str
    method: str
    n_customers: int
    predicted_orders: float
    actual_orders: int
    mae_per_customer: float
    mae_same_pace: float
    top_decile_revenue_share: float | None
    week_starts: list[str]
    predicted_orders_per_week: list[float]
    actual_orders_per_week: list[int]
    calibration_by_band: list[dict[str, Any]]
    calibration_by_decile: list[dict[str, Any]]
    new_customers: int
    new_customer_orders: int
    params: dict[str, float] | None
    spend_params: dict[str, float] | None
    data_check: dict[str, Any]
    plain_words: list[str] = field(default_factory=list)
    # Per-customer arrays behind the figures (not stored): customer ids, what
    # happened, and the fitted model's predictions, for comparing other models.
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    served: dict[str, str] = field(default_factory=dict)

    def bgnbd_arrays(self) -> dict[str, np.ndarray] | None:
        """BG/NBD's predictions at the cut-off (None when the heuristic stood in)."""
        if self.method == "heuristic" or not self.arrays:
            return None
        a = self.arrays
        # a fit that settled on extreme values can give undefined figures: not a candidate
        if not (np.isfinite(a["orders"]).all() and np.isfinite(a["churn"]).all()):
            return None
        return {
            "customer_ids": a["customer_ids"],
            "orders": a["orders"],
            "value": a["orders"] * a["order_value"],
            "churn": a["churn"],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; the first six keys are the API contract's ``backtest`` object."""
        return {
            "cutoff": str(self.cutoff),
            "horizon_days": int(self.horizon_days),
            "predicted_orders": _num(self.predicted_orders),
            "actual_orders": int(self.actual_orders),
            "mae_per_customer": _num(self.mae_per_customer),
            "top_decile_revenue_share": None
            if self.top_decile_revenue_share is None
            else _num(self.top_decile_revenue_share),
            "time_unit": self.time_unit,
            "method": self.method,
            "n_customers": int(self.n_customers),
            "mae_same_pace": _num(self.mae_same_pace),
            "weeks": {
                "start": list(self.week_starts),
                "predicted_orders": [_num(v) for v in self.predicted_orders_per_week],
                "actual_orders": [int(v) for v in self.actual_orders_per_week],
            },
            "calibration_by_band": self.calibration_by_band,
            "calibration_by_decile": self.calibration_by_decile,
            "new_customers": int(self.new_customers),
            "new_customer_orders": int(self.new_customer_orders),
            "params": self.params,
            "spend_params": self.spend_params,
            "data_check": self.data_check,
            "plain_words": list(self.plain_words),
            "served": dict(self.served),
        }


def _calibration_rows(groups: np.ndarray, labels: list, predicted, observed) -> list[dict]:
    rows = []
    for code, label in enumerate(labels):
        member = groups == code
        n = int(member.sum())
        if n == 0:
            continue
        rows.append(
            {
                "group": label,
                "customers": n,
                "predicted_no_order": _num(predicted[member].mean()),
                "observed_no_order": _num(observed[member].mean()),
            }
        )
    return rows


def run_backtest(
    customer_ids: Any,
    timestamps: Any,
    amounts: Any,
    *,
    cutoff: Any,
    horizon_days: int = 90,
    time_unit: TimeUnit = "day",
    data_end: Any = None,
    annual_discount_rate: float = 0.10,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
    min_history_days: int = MIN_HISTORY_DAYS,
) -> BacktestResult:
    """Fit on orders up to ``cutoff`` (inclusive), predict ``horizon_days`` after it.

    ``data_end`` is the last day the data covers (default: the last order
    day). A horizon running past it would compare predictions with a period
    partly unrecorded, so that is refused with a message saying which cut-off
    would work.
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    ids = np.asarray(customer_ids)
    days = to_day_numbers(timestamps)
    values = np.asarray(amounts, dtype=np.float64)
    if not (ids.shape[0] == days.size == values.size):
        raise ValueError("customer_ids, timestamps and amounts must have the same length")
    cut = to_day(cutoff)
    cut_int = int(cut.astype(np.int64))
    end_int = int(days.max()) if data_end is None else int(to_day(data_end).astype(np.int64))
    if cut_int + horizon_days > end_int:
        latest = np.datetime64(end_int - horizon_days, "D")
        raise ValueError(
            f"The back-test needs {horizon_days} days of orders after the cut-off {cut}, "
            f"but the data end on {np.datetime64(end_int, 'D')}; "
            f"choose a cut-off on or before {latest}."
        )

    summary = summary_from_transactions(
        ids[days <= cut_int],
        days[days <= cut_int].astype("datetime64[D]"),
        values[days <= cut_int],
        as_of=cut,
        time_unit=time_unit,
    )
    if summary.n_customers == 0:
        raise ValueError(f"There are no orders on or before the cut-off {cut}.")
    n_weeks = math.ceil(horizon_days / 7)
    boundaries = [min(7 * k, horizon_days) for k in range(1, n_weeks + 1)]
    predictions: CustomerPredictions = predict_customers(
        summary,
        horizons_days=sorted({*boundaries, horizon_days}),
        churn_horizon_days=horizon_days,
        annual_discount_rate=annual_discount_rate,
        min_repeat_customers=min_repeat_customers,
        min_history_days=min_history_days,
        with_reasons=False,
    )
    predicted = predictions.expected_orders[horizon_days]
    cumulative = np.array([predictions.expected_orders[b].sum() for b in boundaries])
    predicted_weekly = np.diff(cumulative, prepend=0.0)

    # What happened: purchase days and revenue per known customer in the horizon.
    in_horizon = (days > cut_int) & (days <= cut_int + horizon_days)
    h_ids, h_days, h_values = ids[in_horizon], days[in_horizon], values[in_horizon]
    position = pd.Index(summary.customer_ids).get_indexer(h_ids)
    known = position >= 0
    n = summary.n_customers
    key = position[known].astype(np.int64) * (horizon_days + 1) + (h_days[known] - cut_int)
    day_keys = np.unique(key)
    actual = np.bincount(day_keys // (horizon_days + 1), minlength=n)
    actual_weekly = np.bincount((day_keys % (horizon_days + 1) - 1) // 7, minlength=n_weeks).astype(
        np.int64
    )
    revenue = np.bincount(position[known], weights=h_values[known], minlength=n)
    new_ids = h_ids[~known]
    new_customers = int(pd.unique(new_ids).size)
    new_orders = int(pd.DataFrame({"c": new_ids, "d": h_days[~known]}).drop_duplicates().shape[0])

    mae = float(np.abs(predicted - actual).mean())
    unit_days = 7.0 if time_unit == "week" else 1.0
    t_days = summary.T * unit_days
    past_pace = np.divide(summary.frequency, t_days, out=np.zeros(n), where=t_days > 0) * float(
        horizon_days
    )
    mae_pace = float(np.abs(past_pace - actual).mean())

    value = predicted * predictions.expected_order_value
    top_n = max(1, math.ceil(0.1 * n))
    top = np.argsort(-value, kind="stable")[:top_n]
    total_revenue = float(revenue.sum())
    top_share = float(revenue[top].sum() / total_revenue) if total_revenue > 0 else None

    no_order = (actual == 0).astype(np.float64)
    p_none = predictions.churn_probability
    band_order = ["low", "medium", "high"]
    band_code = np.select([predictions.risk_band == b for b in band_order], [0, 1, 2], default=-1)
    by_band = _calibration_rows(band_code, band_order, p_none, no_order)
    decile = _deciles(p_none)
    by_decile = _calibration_rows(decile, [f"decile {d + 1}" for d in range(10)], p_none, no_order)

    result = BacktestResult(
        cutoff=cut,
        horizon_days=int(horizon_days),
        time_unit=time_unit,
        method=predictions.method,
        n_customers=n,
        predicted_orders=float(predicted.sum()),
        actual_orders=int(actual.sum()),
        mae_per_customer=mae,
        mae_same_pace=mae_pace,
        top_decile_revenue_share=top_share,
        week_starts=[str(cut + np.timedelta64(1 + 7 * k, "D")) for k in range(n_weeks)],
        predicted_orders_per_week=predicted_weekly.tolist(),
        actual_orders_per_week=actual_weekly.tolist(),
        calibration_by_band=by_band,
        calibration_by_decile=by_decile,
        new_customers=new_customers,
        new_customer_orders=new_orders,
        params=predictions.model_dict()["params"],
        spend_params=predictions.model_dict()["spend_params"],
        data_check=predictions.data_check.to_dict(),
    )
    result.plain_words = _plain_words(result, top_n=top_n, missing=predictions.data_check.missing)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.vstack(
            [
                np.where(
                    predicted > 0, predictions.expected_orders[b] / predicted, b / horizon_days
                )
                for b in boundaries
            ]
        )
    result.arrays = {
        "customer_ids": summary.customer_ids,
        "actual": actual.astype(np.float64),
        "revenue": revenue,
        "orders": predicted,
        "order_value": predictions.expected_order_value,
        "churn": p_none,
        "week_shares": shares,
    }
    return result


def served_backtest(
    result: BacktestResult,
    *,
    served: dict[str, str],
    orders: np.ndarray,
    value: np.ndarray,
    churn: np.ndarray,
    bands: np.ndarray,
    scores: dict[str, Any] | None = None,
) -> BacktestResult:
    """The same back-test describing the served models: ``orders``, ``value`` (in the
    horizon) and ``churn`` (P(no order in the horizon)) per customer, aligned with
    ``result.arrays["customer_ids"]``. The weekly split of the served orders follows
    BG/NBD's shape over the weeks (evenly for the heuristic)."""
    a = result.arrays
    actual, revenue = a["actual"], a["revenue"]
    n = actual.size
    orders = np.asarray(orders, dtype=np.float64)
    cumulative = (a["week_shares"] * orders[None, :]).sum(axis=1)
    weekly = np.diff(cumulative, prepend=0.0)
    top_n = max(1, math.ceil(0.1 * n))
    top = np.argsort(-np.asarray(value, dtype=np.float64), kind="stable")[:top_n]
    total_revenue = float(revenue.sum())
    no_order = (actual == 0).astype(np.float64)
    band_order = ["low", "medium", "high"]
    band_code = np.select([bands == b for b in band_order], [0, 1, 2], default=-1)
    out = replace(
        result,
        method=served.get("orders", result.method),
        predicted_orders=float(orders.sum()),
        mae_per_customer=float(np.abs(orders - actual).mean()) if n else float("nan"),
        top_decile_revenue_share=float(revenue[top].sum() / total_revenue)
        if total_revenue > 0
        else None,
        predicted_orders_per_week=weekly.tolist(),
        calibration_by_band=_calibration_rows(band_code, band_order, churn, no_order),
        calibration_by_decile=_calibration_rows(
            _deciles(churn), [f"decile {d + 1}" for d in range(10)], churn, no_order
        ),
        served=dict(served),
    )
    out.plain_words = _plain_words(out, top_n=top_n, missing=[], scores=scores)
    return out


def _deciles(p: np.ndarray) -> np.ndarray:
    """Decile of each value, 0 = lowest tenth, by rank so that ties split evenly."""
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.argsort(np.argsort(p, kind="stable"), kind="stable")
    return (ranks * 10 // p.size).astype(np.int64)


def _pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{round(100 * x)}%"


def _orders(x: float) -> str:
    return f"{x:,.0f} order" + ("" if round(x) == 1 else "s")


# What each served kind is, in an owner's words.
SERVED_WORDS = {
    "bgnbd": "a model of each customer's buying rhythm",
    "gradient_boosting": "a model trained on how your customers behaved before",
    "heuristic": "simple averages",
    "baseline": "the simple rule that everyone keeps their past pace",
}


def _served_sentence(r: BacktestResult, scores: dict[str, Any]) -> str:
    kind = r.served.get("orders", r.method)
    mae = r.mae_per_customer
    if kind == "baseline":
        return (
            f"No model predicted your customers' orders better than assuming everyone keeps "
            f"their past pace, so that is what we show: it was off by {r.mae_same_pace:.2f} "
            "orders per customer."
        )
    return (
        f"We predict next-{r.horizon_days}-day orders with {SERVED_WORDS.get(kind, kind)}: "
        f"it was off by {mae:.2f} orders per customer, vs {r.mae_same_pace:.2f} if we "
        "assumed everyone kept their past pace."
    )


def _plain_words(
    r: BacktestResult, *, top_n: int, missing: list[str], scores: dict[str, Any] | None = None
) -> list[str]:
    words = []
    if r.method == "heuristic":
        words.append(
            "There is too little history for the prediction models, so this checks the "
            "simple averages shown instead. " + " ".join(missing)
        )
    words.append(
        f"We used orders up to {r.cutoff} to predict the next {r.horizon_days} days for "
        f"{r.n_customers:,} customers, then compared with what they actually did."
    )
    if not math.isfinite(r.predicted_orders):
        pass
    elif r.actual_orders > 0:
        diff = (r.predicted_orders - r.actual_orders) / r.actual_orders
        direction = "more" if diff > 0 else "fewer"
        closeness = (
            "almost exactly right"
            if abs(diff) < 0.05
            else f"{_pct(abs(diff))} {direction} than happened"
        )
        words.append(
            f"We predicted {_orders(r.predicted_orders)}; {_orders(r.actual_orders)} "
            f"came in ({closeness})."
        )
    else:
        words.append(
            f"We predicted {_orders(r.predicted_orders)}; none came in from these customers."
        )
    if r.served:
        words.append(_served_sentence(r, scores or {}))
    else:
        compare = "better than" if r.mae_per_customer < r.mae_same_pace else "no better than"
        words.append(
            f"For a single customer the prediction was off by {r.mae_per_customer:.2f} orders "
            f"on average, {compare} assuming everyone keeps their past pace "
            f"(off by {r.mae_same_pace:.2f})."
        )
    for row in r.calibration_by_band:
        words.append(
            f"Of the {row['customers']:,} customers rated {row['group']} risk, "
            f"{_pct(row['observed_no_order'])} did not order in those {r.horizon_days} days "
            f"(we expected {_pct(row['predicted_no_order'])})."
        )
    if r.top_decile_revenue_share is not None:
        words.append(
            f"The {top_n:,} customers ({_pct(0.1)}) we ranked highest by predicted value made "
            f"{_pct(r.top_decile_revenue_share)} of the revenue from these customers in that "
            "period (a random tenth would make about 10%)."
        )
    if r.new_customer_orders:
        words.append(
            f"{r.new_customers:,} new customers placed {_orders(r.new_customer_orders)} in "
            "that period; new customers are not part of these predictions."
        )
    return words
