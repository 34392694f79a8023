"""The predictions step: load → fit and score (CLV, churn, next order) → back-test →
purchase propensity → product demand → write, atomically.

`prediction_run()` reads the organisation's orders through the shared reader
(`customers.history.History`: only purchases, return orders and orders with a
negative total are left out of the customer models), hands plain
arrays to the numerical code in `segmentation/ml/`, and then replaces the live
run in one transaction: a failure or a cancellation anywhere before the commit
changes nothing.

Days are UTC calendar days, like the segmentation step, so `--as-of` means the
same orders in every step. The back-test is stored beside the run (fit on the
orders up to `as_of − horizon`, compare with what happened up to `as_of`); it
never replaces the run's own predictions.

Rule segments can test churn risk, probability alive, predicted value, expected
orders and purchase propensity of the live run: the fields are registered here
with `segmentation.services.rules.register_rule_field`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction

from accounts.actor import Actor
from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.jsonsafe import json_safe
from customers.history import History, Purchases
from predictions.ml import backtest as ml_backtest
from predictions.ml import clv as ml_clv
from predictions.ml import demand as ml_demand
from predictions.ml import propensity as ml_propensity
from predictions.ml import serving as ml_serving
from segmentation.pipeline import pipeline_wait_for_imports
from segmentation.services import rules
from segmentation.services.bulk import bulk_insert
from segmentation.services.sql import latest_data_date, table_name

from .models import (
    ChurnRisk,
    CustomerPrediction,
    PredictionRun,
    PredictionSettings,
    ProductForecast,
    Trend,
)

log = logging.getLogger("segmenta.predictions")

HORIZONS_DAYS = (30, 90, 365)
CHURN_HORIZON_DAYS = 90
VALUE_MONTHS = 12
PROPENSITY_HORIZON_DAYS = 30
DEMAND_WEEKS = 4
DEMAND_HISTORY_WEEKS = 26  # weeks of past sales kept per product for its chart
DEMAND_MAX_WEEKS = ml_demand.MAX_WEEKS
PROPENSITY_DESCRIPTIONS = {
    "recency_days": "days since the last order",
    "frequency": "number of days with an order",
    "monetary": "total spend",
    "avg_basket_value": "average spend per order day",
    "tenure_days": "days since the first order",
    "mean_days_between_orders": "usual gap between orders",
}
# Back-test horizons, longest first: the first one the history allows is used.
BACKTEST_HORIZONS = (90, 60, 30)
MAX_DISCOUNT_RATE = 0.5
WRITE_CHUNK = 5_000
FETCH_CHUNK = 100_000  # rows per chunk of the reads (progress between them)
# Older runs keep their JSON summaries (accuracy over time); their per-customer and
# per-product rows are pruned beyond the newest few runs.
KEEP_RUNS_WITH_ROWS = 3
# "Worth saving": came back at least once and spent at least this quantile of the
# scored customers' spend, and now at high churn risk.
AT_RISK_MIN_ORDERS = 2
AT_RISK_SPEND_QUANTILE = 0.75
VALUE_BINS = 20


# --- reading: the shared reader (customers.history) ----------------------------------
# Purchases up to `as_of`, one entry per order (customer id, UTC day, value).
OrderData = Purchases


def _day_number(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def prediction_load_orders(
    *, organization_id: int, as_of: dt.date, job: JobHandle = NULL_JOB
) -> OrderData:
    """The organisation's purchases up to and including `as_of` as arrays
    (`History.purchases`): guest orders, erased customers' orders, return orders
    and orders with a negative total are left out; the customer models count
    purchases only."""
    history = History(organization_id, as_of, job=job, chunk=FETCH_CHUNK)
    return history.purchases(progress=(2, 10))


def prediction_load_sales(
    *, organization_id: int, as_of: dt.date, max_weeks: int = DEMAND_MAX_WEEKS
) -> pd.DataFrame:
    """Units per product and UTC day from every order line (guest orders included,
    returns netted, non-merchandise and hidden products left out), for the demand
    forecast (`History.product_sales`)."""
    return History(organization_id, as_of).product_sales(weeks=max_weeks)


# --- settings -------------------------------------------------------------------------
def prediction_settings_get() -> PredictionSettings:
    """The organisation's settings, or unsaved defaults."""
    found = PredictionSettings.objects.first()
    return found if found is not None else PredictionSettings()


def parse_percent(raw: Any) -> float:
    """A yearly rate typed by a person as a percentage ("10", "7.5%") as a fraction."""
    text = str(raw if raw is not None else "").strip().rstrip("%").strip().replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        raise ApplicationError(
            f"The discount rate must be a number of percent, such as 10, not '{raw}'.",
            {"fields": {"annual_discount_rate": "Enter a number."}},
        ) from None
    return value / 100.0


def prediction_settings_update(
    *, organization, annual_discount_rate: float, user=None
) -> PredictionSettings:
    """Save the yearly discount rate (a fraction: 0.10 is 10% a year)."""
    rate = float(annual_discount_rate)
    if not math.isfinite(rate) or not (0.0 <= rate <= MAX_DISCOUNT_RATE):
        raise ApplicationError(
            f"The discount rate must be between 0% and {MAX_DISCOUNT_RATE:.0%} a year.",
            {"fields": {"annual_discount_rate": "Out of range."}},
        )
    row = PredictionSettings.objects.first() or PredictionSettings(organization=organization)
    row.annual_discount_rate = rate
    if Actor.person(user) is not None:
        row.updated_by = Actor.person(user)
    row.save()
    log.info("predictions.settings_updated org_id=%s rate=%s", organization.pk, rate)
    return row


# --- compute ----------------------------------------------------------------------------
@dataclass
class Computed:
    as_of: dt.date
    predictions: ml_clv.CustomerPredictions
    settings: dict[str, Any]
    backtest: dict[str, Any] | None = None
    backtest_note: str = ""
    propensity: ml_propensity.PropensityResult | None = None
    propensity_note: str = ""
    forecast: ml_demand.DemandForecast | None = None
    sales: pd.DataFrame | None = None
    demand_note: str = ""
    returns_excluded: int = 0
    n_orders: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # what each customer-facing prediction serves (see predictions.ml.serving)
    served: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, Any] | None = None


def prediction_score(
    orders: OrderData, *, as_of: dt.date, annual_discount_rate: float
) -> ml_clv.CustomerPredictions:
    """Fit BG/NBD + Gamma-Gamma on the purchases and score every customer (pure)."""
    summary = ml_clv.summary_from_transactions(
        orders.customer_ids, orders.days, orders.amounts, as_of=as_of, time_unit="day"
    )
    return ml_clv.predict_customers(
        summary,
        horizons_days=HORIZONS_DAYS,
        value_months=VALUE_MONTHS,
        annual_discount_rate=annual_discount_rate,
        churn_horizon_days=CHURN_HORIZON_DAYS,
    )


def backtest_horizon(*, first_day: dt.date, as_of: dt.date) -> int | None:
    """The longest back-test horizon with at least as much history before the cut-off."""
    for horizon in BACKTEST_HORIZONS:
        if (as_of - dt.timedelta(days=horizon) - first_day).days >= horizon:
            return horizon
    return None


def prediction_backtest(
    orders: OrderData, *, as_of: dt.date, annual_discount_rate: float
) -> tuple[dict[str, Any] | None, str]:
    """Fit on the orders up to `as_of − horizon`, compare with what happened up to
    `as_of`. Returns (the stored back-test, or None, and a note when None)."""
    if orders.n_orders == 0:
        return None, "There are no orders to test the predictions on."
    first_day = orders.days.min().astype(dt.date)
    horizon = backtest_horizon(first_day=first_day, as_of=as_of)
    if horizon is None:
        span = (as_of - first_day).days
        need = 2 * BACKTEST_HORIZONS[-1]
        return None, (
            f"The order history covers {span} day{'s' if span != 1 else ''}; a back-test needs "
            f"at least {need} ({BACKTEST_HORIZONS[-1]} to fit on and {BACKTEST_HORIZONS[-1]} "
            "to compare with)."
        )
    try:
        result = ml_backtest.run_backtest(
            orders.customer_ids,
            orders.days,
            orders.amounts,
            cutoff=as_of - dt.timedelta(days=horizon),
            horizon_days=horizon,
            data_end=as_of,
            annual_discount_rate=annual_discount_rate,
        )
    except ValueError as exc:
        return None, str(exc)
    out = result.to_dict()
    share = out.get("top_decile_revenue_share")
    out["ranking_sentence"] = (
        None
        if share is None
        else f"The top 10% of customers by predicted value made {round(100 * share)}% of the "
        f"revenue of the {horizon} days after {out['cutoff']} (a random tenth would make about 10%)."
    )
    return out, ""


def prediction_backtest_and_serve(
    orders: OrderData,
    *,
    as_of: dt.date,
    predictions: ml_clv.CustomerPredictions,
    annual_discount_rate: float,
) -> tuple[ml_clv.CustomerPredictions, dict[str, Any] | None, str, ml_serving.Choice | None]:
    """Back-test BG/NBD, gradient boosting and the naive baselines at `as_of − horizon`,
    serve for each prediction the best that beats its baseline (else the baseline).

    Returns (the predictions with the served figures, the stored back-test describing
    the served models or None, a note when None, the choice or None)."""
    if orders.n_orders == 0:
        return predictions, None, "There are no orders to test the predictions on.", None
    first_day = orders.days.min().astype(dt.date)
    horizon = backtest_horizon(first_day=first_day, as_of=as_of)
    if horizon is None:
        _, note = prediction_backtest(
            orders, as_of=as_of, annual_discount_rate=annual_discount_rate
        )
        return predictions, None, note, None
    try:
        result, choice = ml_serving.backtest_and_choose(
            orders.customer_ids,
            orders.days,
            orders.amounts,
            as_of=as_of,
            horizon_days=horizon,
            fit_bgnbd=predictions.method != "heuristic",
            annual_discount_rate=annual_discount_rate,
            propensity_horizon_days=PROPENSITY_HORIZON_DAYS,
        )
    except ValueError as exc:
        return predictions, None, str(exc), None
    out = result.to_dict()
    out["candidates"] = choice.to_dict()
    share = out.get("top_decile_revenue_share")
    out["ranking_sentence"] = (
        None
        if share is None
        else f"The top 10% of customers by predicted value made {round(100 * share)}% of the "
        f"revenue of the {horizon} days after {out['cutoff']} (a random tenth would make about 10%)."
    )
    return ml_serving.apply_choice(predictions, choice), out, "", choice


def _served_without_backtest(predictions: ml_clv.CustomerPredictions, propensity) -> dict:
    """Without a back-test nothing has been shown to beat its baseline: a heuristic run
    is the baseline; a run told to skip the back-test keeps what it fitted."""
    kind = "baseline" if predictions.method == "heuristic" else "bgnbd"
    prop = "baseline"
    if (
        propensity is not None
        and propensity.method == "gradient_boosting"
        and propensity.brier is not None
        and propensity.brier_base_rate is not None
        and propensity.brier < propensity.brier_base_rate
    ):
        prop = "gradient_boosting"
    return {"orders": kind, "value": kind, "churn": kind, "propensity": prop}


def prediction_propensity(
    orders: OrderData, *, as_of: dt.date, horizon_days: int = PROPENSITY_HORIZON_DAYS
) -> tuple[ml_propensity.PropensityResult | None, str]:
    """P(order in the next `horizon_days`) per customer, trained on the period just
    before: features as of `as_of − horizon`, label "ordered in the horizon after"."""
    if orders.n_orders == 0:
        return None, "There are no orders to learn from."
    start = as_of - dt.timedelta(days=horizon_days)
    train = ml_propensity.order_features(
        orders.customer_ids, orders.days, orders.amounts, as_of=start
    )
    labels = ml_propensity.labels_from_orders(
        orders.customer_ids, orders.days, start=start, horizon_days=horizon_days, index=train.index
    )
    current = ml_propensity.order_features(
        orders.customer_ids, orders.days, orders.amounts, as_of=as_of
    )
    result = ml_propensity.fit_propensity(
        train_features=train,
        train_labels=labels,
        current_features=current,
        horizon_days=horizon_days,
        descriptions=PROPENSITY_DESCRIPTIONS,
    )
    return result, ""


def prediction_demand(
    sales: pd.DataFrame, *, as_of: dt.date
) -> tuple[ml_demand.DemandForecast | None, str]:
    if len(sales) == 0:
        return None, "There are no product sales to forecast from."
    try:
        return ml_demand.forecast_demand(sales, as_of=as_of, horizon_weeks=DEMAND_WEEKS), ""
    except ValueError as exc:
        return None, str(exc)


def prediction_compute(
    *,
    organization,
    as_of: dt.date,
    job: JobHandle = NULL_JOB,
    backtest: bool = True,
    propensity: bool = True,
    demand: bool = True,
) -> Computed:
    """Everything a run holds, computed in memory; nothing is written."""
    scope_check(organization=organization)
    timings: dict[str, float] = {}
    rate = float(prediction_settings_get().annual_discount_rate)
    settings = {
        "annual_discount_rate": rate,
        "horizons_days": list(HORIZONS_DAYS),
        "value_months": VALUE_MONTHS,
        "churn_horizon_days": CHURN_HORIZON_DAYS,
        "propensity_horizon_days": PROPENSITY_HORIZON_DAYS,
        "demand_horizon_weeks": DEMAND_WEEKS,
        "time_zone": "UTC",
    }

    job.progress(2, "Reading orders", force=True)
    t = time.perf_counter()
    orders = prediction_load_orders(organization_id=organization.pk, as_of=as_of, job=job)
    timings["load_orders"] = time.perf_counter() - t
    if orders.n_orders == 0:
        raise ApplicationError(
            f"There are no orders up to {as_of:%d %b %Y} to predict from: import orders, "
            "then run the predictions."
        )

    job.progress(15, f"Fitting the purchase and spend models on {orders.n_orders:,} orders")
    t = time.perf_counter()
    predictions = prediction_score(orders, as_of=as_of, annual_discount_rate=rate)
    timings["fit_score"] = time.perf_counter() - t
    computed = Computed(
        as_of=as_of,
        predictions=predictions,
        settings=settings,
        returns_excluded=orders.returns_excluded,
        n_orders=orders.n_orders,
        timings=timings,
    )

    choice = None
    if backtest:
        job.progress(35, "Back-testing: predicting a past period and comparing with what happened")
        t = time.perf_counter()
        (
            computed.predictions,
            computed.backtest,
            computed.backtest_note,
            choice,
        ) = prediction_backtest_and_serve(
            orders, as_of=as_of, predictions=predictions, annual_discount_rate=rate
        )
        timings["backtest"] = time.perf_counter() - t

    if propensity:
        job.progress(48, "Learning who is likely to order in the next 30 days")
        t = time.perf_counter()
        if choice is not None:
            computed.propensity = ml_serving.propensity_result(choice)
        else:
            computed.propensity, computed.propensity_note = prediction_propensity(
                orders, as_of=as_of
            )
        timings["propensity"] = time.perf_counter() - t
    if choice is not None:
        computed.served = dict(choice.served)
        if not propensity:
            computed.served.pop("propensity", None)
    else:
        computed.served = _served_without_backtest(computed.predictions, computed.propensity)

    if demand:
        job.progress(65, "Forecasting product demand")
        t = time.perf_counter()
        sales = prediction_load_sales(organization_id=organization.pk, as_of=as_of)
        timings["load_sales"] = time.perf_counter() - t
        t = time.perf_counter()
        computed.sales = sales
        computed.forecast, computed.demand_note = prediction_demand(sales, as_of=as_of)
        timings["demand"] = time.perf_counter() - t
    return computed


# --- write ------------------------------------------------------------------------------
def _finite_or(values: np.ndarray, default: float | None) -> list:
    arr = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(arr)
    out = arr.astype(object)
    out[~ok] = default
    return out.tolist()


def _histogram(values: np.ndarray) -> dict[str, Any]:
    """Predicted value in equal bins up to the 99th percentile, plus the rest above."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"edges": [], "counts": [], "above": 0}
    cap = float(np.quantile(v, 0.99))
    if cap <= 0:
        cap = float(v.max()) or 1.0
    edges = np.linspace(0.0, cap, VALUE_BINS + 1)
    counts, _ = np.histogram(np.clip(v, 0.0, None), bins=edges)
    above = int((v > cap).sum())
    return {
        "edges": [round(float(e), 2) for e in edges],
        "counts": counts.astype(int).tolist(),
        "above": above,
    }


def _nice_threshold(value: float) -> float:
    """Round a spend threshold down to two significant figures (a number people read)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    magnitude = 10 ** (math.floor(math.log10(value)) - 1)
    return float(math.floor(value / magnitude) * magnitude)


def _summary(computed: Computed, *, spend_threshold: float) -> dict[str, Any]:
    p = computed.predictions
    bands = np.asarray(p.risk_band, dtype=object)
    value = np.asarray(p.predicted_value, dtype=np.float64)
    return {
        "n_orders": computed.n_orders,
        "returns_excluded": computed.returns_excluded,
        "n_repeat_customers": int(p.data_check.n_repeat_customers),
        "expected_orders": {
            str(h): float(np.nansum(p.expected_orders[h])) for h in sorted(p.expected_orders)
        },
        "predicted_value_total": float(np.nansum(value)),
        "predicted_value_mean": float(np.nanmean(value)) if value.size else 0.0,
        "predicted_value_median": float(np.nanmedian(value)) if value.size else 0.0,
        "risk_counts": {b.value: int((bands == b.value).sum()) for b in ChurnRisk},
        "value_histogram": _histogram(value),
        "at_risk": {
            "min_orders": AT_RISK_MIN_ORDERS,
            "min_spent": spend_threshold,
            "spend_quantile": AT_RISK_SPEND_QUANTILE,
        },
        "propensity_note": computed.propensity_note,
        "demand_note": computed.demand_note,
        "served": dict(computed.served),
    }


def _spend_threshold() -> float:
    """Spend at the `AT_RISK_SPEND_QUANTILE` of the scored repeat customers (their
    stored total, as the customer list and rule segments see it)."""
    from customers.models import Customer

    spent = np.array(
        Customer.objects.filter(orders_count__gte=AT_RISK_MIN_ORDERS, erased_at__isnull=True)
        .values_list("total_spent", flat=True)
        .order_by(),
        dtype=np.float64,
    )
    if spent.size == 0:
        return 0.0
    return _nice_threshold(float(np.quantile(spent, AT_RISK_SPEND_QUANTILE)))


def _demand_summary(forecast: ml_demand.DemandForecast | None, note: str) -> dict | None:
    if forecast is None:
        return {"note": note} if note else None
    trends = forecast.table["trend"].value_counts().to_dict()
    return {
        "as_of": str(forecast.as_of),
        "horizon_weeks": forecast.horizon_weeks,
        "interval": forecast.interval,
        "notes": list(forecast.notes),
        "n_products": int(len(forecast.table)),
        "rising": int(trends.get("rising", 0)),
        "falling": int(trends.get("falling", 0)),
        "steady": int(trends.get("steady", 0)),
        "insufficient": int(trends.get("not enough history", 0)),
        "total_units": float(forecast.table["forecast"].sum()),
    }


def _finite_array(values, default: float) -> np.ndarray:
    """Floats with every undefined value (NaN, infinity) replaced by `default`
    (NaN: stored as NULL)."""
    arr = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, default)


def _iso_dates(days: np.ndarray) -> np.ndarray:
    """ISO dates as text (None where there is no date), as both databases take them."""
    out = np.datetime_as_string(days, unit="D").astype(object)
    out[np.isnat(days)] = None
    return out


def _customer_columns(computed: Computed) -> dict[str, Any]:
    """The per-customer rows of a run as columns (arrays), for `bulk_insert`."""
    p = computed.predictions
    n = p.customer_ids.size
    next_dates = np.asarray(p.next_order_date).astype("datetime64[D]")
    propensity: Any = np.full(n, np.nan)
    propensity_reason: Any = [""] * n
    if computed.propensity is not None and computed.propensity.probabilities.size:
        probs = computed.propensity.probabilities.reindex(p.customer_ids)
        reasons = computed.propensity.reasons.reindex(p.customer_ids)
        propensity = _finite_array(probs.to_numpy(dtype=np.float64), np.nan)
        propensity_reason = [str(r)[:300] if isinstance(r, str) else "" for r in reasons]
    reasons = p.reasons if p.reasons else [""] * n
    return {
        "customer_id": np.asarray(p.customer_ids, dtype=np.int64),
        "p_alive": _finite_array(p.p_alive, np.nan),
        "expected_orders_30d": _finite_array(p.expected_orders[30], 0.0),
        "expected_orders_90d": _finite_array(p.expected_orders[90], 0.0),
        "expected_orders_365d": _finite_array(p.expected_orders[365], 0.0),
        "expected_next_order_at": _iso_dates(next_dates),
        "predicted_clv_365d": _finite_array(p.predicted_value, 0.0),
        "expected_order_value": _finite_array(p.expected_order_value, 0.0),
        "churn_probability": _finite_array(p.churn_probability, 1.0),
        "churn_risk": np.asarray(p.risk_band, dtype=object).tolist(),
        "propensity": propensity,
        "propensity_reason": propensity_reason,
        "reason": [r[:300] for r in reasons],
        "method": [p.method] * n,
    }


CUSTOMER_COLUMNS = [
    "organization_id",
    "run_id",
    "customer_id",
    "p_alive",
    "expected_orders_30d",
    "expected_orders_90d",
    "expected_orders_365d",
    "expected_next_order_at",
    "predicted_clv_365d",
    "expected_order_value",
    "churn_probability",
    "churn_risk",
    "propensity",
    "propensity_reason",
    "reason",
    "method",
]

_TRENDS = {
    "rising": Trend.RISING,
    "falling": Trend.FALLING,
    "steady": Trend.STEADY,
    "not enough history": Trend.INSUFFICIENT,
}


def _sales_history(sales: pd.DataFrame, as_of: dt.date, weeks: int) -> dict[str, list[dict]]:
    """Units per product in the last `weeks` 7-day weeks ending on `as_of`."""
    if sales is None or len(sales) == 0:
        return {}
    as_of_n = _day_number(as_of)
    day = sales["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    back = (as_of_n - day) // 7
    keep = (back >= 0) & (back < weeks)
    codes, skus = pd.factorize(sales["sku"].to_numpy()[keep], sort=True)
    matrix = np.zeros((len(skus), weeks))
    np.add.at(matrix, (codes, weeks - 1 - back[keep]), sales["units"].to_numpy()[keep])
    starts = [(as_of - dt.timedelta(days=7 * (weeks - k) - 1)).isoformat() for k in range(weeks)]
    return {
        str(sku): [
            {"start": starts[k], "units": round(float(max(matrix[i, k], 0.0)), 2)}
            for k in range(weeks)
        ]
        for i, sku in enumerate(skus)
    }


def _forecast_objects(computed: Computed, *, org_id: int, run: PredictionRun) -> list:
    from customers.models import Product

    forecast = computed.forecast
    if forecast is None:
        return []
    table = forecast.table
    weekly = forecast.weekly
    by_sku: dict[str, list[dict]] = {}
    for sku, start, units, lower, upper in zip(
        weekly["sku"].to_numpy(),
        weekly["week_start"].to_numpy(),
        weekly["forecast"].to_numpy(dtype=np.float64),
        weekly["lower"].to_numpy(dtype=np.float64),
        weekly["upper"].to_numpy(dtype=np.float64),
        strict=True,
    ):
        by_sku.setdefault(str(sku), []).append(
            {
                "start": str(start),
                "units": round(float(units), 2),
                "lower": round(float(lower), 2),
                "upper": round(float(upper), 2),
            }
        )
    history = _sales_history(computed.sales, computed.as_of, DEMAND_HISTORY_WEEKS)
    skus = [str(s) for s in table["sku"].to_numpy()]
    products = {}
    for start in range(0, len(skus), 5_000):
        products.update(
            {
                sku: (pk, name)
                for sku, pk, name in Product.objects.filter(sku__in=skus[start : start + 5_000])
                .order_by()
                .values_list("sku", "pk", "name")
            }
        )
    objects = []
    for row in table.itertuples(index=False):
        sku = str(row.sku)
        pk, name = products.get(sku, (None, ""))
        change = float(row.trend_change)
        objects.append(
            ProductForecast(
                organization_id=org_id,
                run=run,
                product_id=pk,
                sku=sku[:255],
                name=(name or "")[:500],
                weeks=json_safe(by_sku.get(sku, [])),
                history=json_safe(history.get(sku, [])),
                total_4w=float(row.forecast),
                lower_4w=float(row.lower),
                upper_4w=float(row.upper),
                units_last_4w=float(row.units_last_4_weeks),
                trend=_TRENDS.get(str(row.trend), Trend.INSUFFICIENT),
                trend_change=change if math.isfinite(change) else None,
                label=str(row.label)[:300],
                method=str(row.method)[:32],
                method_label=str(row.method_label)[:100],
            )
        )
    return objects


def prediction_write(
    *, organization, computed: Computed, job: JobHandle = NULL_JOB
) -> PredictionRun:
    """Write a computed run and make it live, in one transaction."""
    p = computed.predictions
    model = p.model_dict()
    org_id = organization.pk
    t = time.perf_counter()
    spend_threshold = _spend_threshold()
    with transaction.atomic():
        previous = PredictionRun.objects.select_for_update().filter(is_live=True).first()
        # json_safe: an undefined figure (NaN, infinity) is stored as null, never
        # refused by the JSON column with the whole run (issue 8, item 10).
        run = PredictionRun.objects.create(
            organization=organization,
            as_of=computed.as_of,
            method=p.method,
            time_unit=p.time_unit,
            data_check=json_safe(p.data_check.to_dict()),
            params=json_safe(
                {**(model["params"] or {}), "log_likelihood": model["log_likelihood"]}
                if model["params"]
                else {}
            ),
            spend_params=json_safe(model["spend_params"] or {}),
            settings=json_safe(computed.settings),
            warnings=list(p.warnings),
            backtest=json_safe(computed.backtest),
            backtest_note=computed.backtest_note[:500],
            propensity=json_safe(computed.propensity.to_dict()) if computed.propensity else None,
            demand=json_safe(_demand_summary(computed.forecast, computed.demand_note)),
            summary=json_safe(_summary(computed, spend_threshold=spend_threshold)),
            timings={},
            n_customers=int(p.customer_ids.size),
            n_products=0 if computed.forecast is None else int(len(computed.forecast.table)),
            is_live=False,
            job_id=job.job_id,
        )
        bulk_insert(
            CustomerPrediction,
            fixed={"organization_id": org_id, "run_id": run.pk},
            columns=_customer_columns(computed),
            not_null_text=("churn_risk", "propensity_reason", "reason", "method"),
            progress=lambda done, total: job.progress(
                82 + 14 * done / max(total, 1), "Saving predictions"
            ),
        )
        ProductForecast.objects.bulk_create(
            _forecast_objects(computed, org_id=org_id, run=run), batch_size=1000
        )
        if previous is not None:
            PredictionRun.objects.filter(pk=previous.pk).update(is_live=False)
        run.is_live = True
        computed.timings["write"] = time.perf_counter() - t
        run.timings = json_safe({k: round(v, 3) for k, v in computed.timings.items()})
        run.save(update_fields=["is_live", "timings"])
        _touch_changed_customers(previous=previous, run=run)
        # A cancel that arrives while writing still leaves everything as it was.
        job.check_cancel()
    _warm_page_lists(run)
    return run


def _warm_page_lists(run: PredictionRun) -> None:
    """Work out the predictions page's lists of the new run now, in the job, so the
    owner's first view after a run does not (seconds on a big organisation). Only
    speed is at stake: a failure is logged and the page works them out itself."""
    from . import selectors

    try:
        lists = [("at_risk", selectors.AT_RISK_SHOWN)]
        if run.propensity and run.propensity.get("method") != "heuristic":
            lists.append(("likely_buyers", selectors.LIKELY_SHOWN))
        for name, limit in lists:
            selectors.page_list_refresh(
                organization=run.organization, name=name, run_id=run.pk, limit=limit
            )
    except Exception:  # noqa: BLE001
        log.warning("predictions.warm_failed run_id=%s", run.pk, exc_info=True)


# What the API shows of a customer's prediction (customers/api PredictionsSerializer).
SHOWN_FIGURES = (
    "p_alive",
    "expected_orders_90d",
    "predicted_clv_365d",
    "expected_next_order_at",
    "churn_risk",
    "churn_probability",
)


def _touch_changed_customers(*, previous: PredictionRun | None, run: PredictionRun) -> None:
    """Customers whose shown prediction differs from the previous live run's have
    changed (`updated_at`), for integrations reading `customers/?updated_since=`.

    One statement: the rows (customer and shown figures) in one run and not the
    other, found by the database (`EXCEPT`, which counts two nulls as equal, as
    the comparison in Python did), never read into Python."""
    from customers.services.stats import customers_touch_where_runs_differ

    customers_touch_where_runs_differ(
        table=table_name(CustomerPrediction),
        columns=("customer_id", *SHOWN_FIGURES),
        organization_id=run.organization_id,
        run_id=run.pk,
        previous_run_id=previous.pk if previous is not None else None,
    )


def prediction_prune_history(*, keep_runs: int = KEEP_RUNS_WITH_ROWS) -> int:
    """Delete per-customer and per-product rows of runs older than the newest `keep_runs`
    (the runs themselves, with their back-tests, are kept)."""
    old = list(
        PredictionRun.objects.filter(is_live=False)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[max(keep_runs - 1, 0) :]
    )
    if not old:
        return 0
    deleted, _ = CustomerPrediction.objects.filter(run_id__in=old).delete()
    ProductForecast.objects.filter(run_id__in=old).delete()
    return deleted


def prediction_run(
    *,
    organization,
    as_of: dt.date | None = None,
    job: JobHandle = NULL_JOB,
    backtest: bool = True,
    propensity: bool = True,
    demand: bool = True,
) -> PredictionRun:
    """Predict for the organisation's customers and products as of `as_of` (default:
    its latest data date) and make the result live. Raises ApplicationError with a
    readable reason; on any failure the live run stays as it was."""
    scope_check(organization=organization)
    started = time.perf_counter()
    if as_of is None:
        as_of = latest_data_date()
        if as_of is None:
            raise ApplicationError(
                "There is no data yet: import customers and orders, then run the predictions."
            )
    pipeline_wait_for_imports()
    computed = prediction_compute(
        organization=organization,
        as_of=as_of,
        job=job,
        backtest=backtest,
        propensity=propensity,
        demand=demand,
    )
    pipeline_wait_for_imports()  # an import that began while this step read is not mixed in
    job.progress(80, f"Saving predictions for {computed.predictions.customer_ids.size:,} customers")
    run = prediction_write(organization=organization, computed=computed, job=job)
    try:
        prediction_prune_history()
    except Exception:  # housekeeping; the run itself is committed
        log.exception("predictions.prune_failed org_id=%s", organization.pk)
    total = time.perf_counter() - started
    timings = {**run.timings, "total": round(total, 3)}
    PredictionRun.objects.filter(pk=run.pk).update(timings=timings)
    run.timings = timings
    log.info(
        "predictions.run_done org_id=%s run_id=%s method=%s customers=%s products=%s seconds=%.2f",
        organization.pk,
        run.pk,
        run.method,
        run.n_customers,
        run.n_products,
        total,
    )
    return run


def prediction_run_start(*, organization, user=None, as_of: dt.date | None = None):
    """Start a predictions job, or return the one already waiting or running."""
    scope_check(organization=organization)
    from segmentation.pipeline import pipeline_step_start

    return pipeline_step_start(
        organization=organization, step="predictions", user=user, as_of=as_of
    )


# --- acting on predictions ------------------------------------------------------------
def at_risk_rule(*, min_spent: float) -> dict:
    """The rule of "worth saving": came back, spent a lot, now at high churn risk."""
    return {
        "op": "and",
        "conditions": [
            {"field": "churn_risk", "operator": "in", "value": [ChurnRisk.HIGH.value]},
            {"field": "orders_count", "operator": "gte", "value": AT_RISK_MIN_ORDERS},
            {"field": "total_spent", "operator": "gte", "value": min_spent},
        ],
    }


def at_risk_segment_create(*, organization, user=None, name: str = ""):
    """A rule segment of the live run's customers worth saving. It is a rule, so it
    follows every later prediction run: people who come back leave it."""
    scope_check(organization=organization)
    run = PredictionRun.objects.filter(is_live=True).first()
    if run is None:
        raise ApplicationError("Run the predictions first: there is no churn risk to go on yet.")
    min_spent = float((run.summary.get("at_risk") or {}).get("min_spent", 0.0))
    name = (name or "").strip() or f"Worth saving ({run.as_of:%b %Y})"
    return rules.rule_segment_create(
        organization=organization,
        name=name,
        rule=at_risk_rule(min_spent=min_spent),
        user=user,
        description=(
            f"Customers at high churn risk who ordered at least {AT_RISK_MIN_ORDERS} times and "
            f"spent at least {min_spent:,.0f} (the top quarter of repeat customers) — from the "
            "predictions page."
        ),
    )


def prediction_erase_customers(*, organization, customer_ids: list[int]) -> None:
    """Erasure handler: nothing predicted about an erased person is kept."""
    scope_check(organization=organization)
    CustomerPrediction.objects.filter(customer_id__in=list(customer_ids)).delete()


# --- rule fields ------------------------------------------------------------------------
def _live_rows():
    return CustomerPrediction.objects.filter(run__is_live=True)


def _risk_choices() -> list[tuple[str, str]]:
    return [(c.value, c.label) for c in ChurnRisk]


def prediction_rule_fields() -> tuple[rules.RuleField, ...]:
    """The rule fields the predictions capability declares (see `segmentation.apps`)."""
    return _RULE_FIELDS


_RULE_FIELDS = (
    rules.related_value_field(
        name="churn_risk",
        label="Churn risk",
        type="choice",
        queryset=_live_rows,
        column="churn_risk",
        choices=_risk_choices,
        help="From the live prediction run: low, medium or high chance of no order in 90 days.",
    ),
    rules.related_value_field(
        name="churn_probability",
        label="Chance of no order in 90 days",
        type="number",
        queryset=_live_rows,
        column="churn_probability",
        help="Between 0 and 1, from the live prediction run.",
    ),
    rules.related_value_field(
        name="p_alive",
        label="Probability still a customer",
        type="number",
        queryset=_live_rows,
        column="p_alive",
        help="Between 0 and 1 (not available when the predictions are simple averages).",
    ),
    rules.related_value_field(
        name="predicted_clv_365d",
        label="Predicted 12-month value",
        type="number",
        queryset=_live_rows,
        column="predicted_clv_365d",
        help="Discounted value of the next 12 months, in the organisation's currency.",
    ),
    rules.related_value_field(
        name="expected_orders_90d",
        label="Expected orders in 90 days",
        type="number",
        queryset=_live_rows,
        column="expected_orders_90d",
    ),
    rules.related_value_field(
        name="purchase_propensity",
        label="Chance to order in 30 days",
        type="number",
        queryset=_live_rows,
        column="propensity",
        help="Between 0 and 1, from the purchase propensity model.",
    ),
)
