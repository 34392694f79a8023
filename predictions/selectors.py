"""Reads for predictions: the live run, its customers and products, and the hooks
through which the customers app shows them (customer page panel, the customers
API's `predictions` field, erasure).

Every query goes through the scoped managers (current organisation only).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import ChurnRisk, CustomerPrediction, PredictionRun, ProductForecast, Trend

TOP_N = 20


def live_run() -> PredictionRun | None:
    return PredictionRun.objects.filter(is_live=True).first()


def runs_recent(limit: int = 30) -> list[PredictionRun]:
    return list(PredictionRun.objects.order_by("-created_at", "-id")[:limit])


def customer_predictions(
    *, run: PredictionRun | None, churn_risk: list[str] | None = None, ordering: str = ""
) -> QuerySet[CustomerPrediction]:
    """A run's customer predictions (erased customers left out), most valuable first."""
    if run is None:
        return CustomerPrediction.objects.none()
    qs = CustomerPrediction.objects.filter(run=run, customer__erased_at__isnull=True)
    if churn_risk:
        qs = qs.filter(churn_risk__in=churn_risk)
    return qs.select_related("customer").order_by(ordering or "-predicted_clv_365d", "pk")


def top_customers(run: PredictionRun, limit: int = TOP_N) -> list[CustomerPrediction]:
    return list(customer_predictions(run=run)[:limit])


def at_risk_customers(run: PredictionRun) -> QuerySet[CustomerPrediction]:
    """Worth saving: came back, spent in the top quarter, now at high churn risk —
    the same rule as the segment the page creates (`services.predictions.at_risk_rule`)."""
    at_risk = (run.summary or {}).get("at_risk") or {}
    return (
        customer_predictions(run=run, churn_risk=[ChurnRisk.HIGH])
        .filter(
            customer__orders_count__gte=at_risk.get("min_orders", 2),
            customer__total_spent__gte=at_risk.get("min_spent", 0),
        )
        .order_by("-customer__total_spent", "pk")
    )


def likely_buyers(run: PredictionRun, limit: int = 10) -> list[CustomerPrediction]:
    if not run.propensity or run.propensity.get("method") == "heuristic":
        return []
    return list(
        customer_predictions(run=run)
        .filter(propensity__isnull=False)
        .order_by("-propensity", "pk")[:limit]
    )


def product_forecasts(
    *, run: PredictionRun | None, trend: str | None = None
) -> QuerySet[ProductForecast]:
    if run is None:
        return ProductForecast.objects.none()
    # a product the owner hid (or marked as not merchandise) after the run
    qs = (
        ProductForecast.objects.filter(run=run)
        .exclude(product__merchandise=False)
        .exclude(product__hidden=True)
    )
    if trend and trend in Trend.values:
        qs = qs.filter(trend=trend)
    return qs.order_by("-total_4w", "sku")


def prediction_for_customer(customer_id: int) -> CustomerPrediction | None:
    return (
        CustomerPrediction.objects.filter(run__is_live=True, customer_id=customer_id)
        .select_related("run")
        .first()
    )


_BACKTEST_CONTRACT_KEYS = (
    "cutoff",
    "horizon_days",
    "predicted_orders",
    "actual_orders",
    "mae_per_customer",
    "top_decile_revenue_share",
)


def _contract_keys_first(backtest: dict | None) -> dict | None:
    # PostgreSQL's jsonb does not keep key order; readers expect the contract's keys first.
    if not backtest:
        return backtest
    head = {k: backtest.get(k) for k in _BACKTEST_CONTRACT_KEYS}
    return {**head, **{k: v for k, v in backtest.items() if k not in head}}


def model_latest() -> dict[str, Any] | None:
    """`GET predictions/models/latest/` (CONTRACT.md): the live run's fitted models and
    back-test, or None before any run."""
    run = live_run()
    if run is None:
        return None
    heuristic = run.is_heuristic
    params = run.params or {}
    return {
        "kind": "heuristic" if heuristic else "bgnbd",
        "time_unit": run.time_unit,
        "params": None if heuristic else {k: params.get(k) for k in ("r", "alpha", "a", "b")},
        "spend_params": {k: run.spend_params.get(k) for k in ("p", "q", "gamma")}
        if run.spend_params
        else None,
        "as_of": run.as_of.isoformat(),
        "backtest": _contract_keys_first(run.backtest),
        # extras
        "run_id": run.pk,
        "method": run.method,
        "log_likelihood": params.get("log_likelihood"),
        "data_check": run.data_check,
        "settings": run.settings,
        "warnings": run.warnings,
        "backtest_note": run.backtest_note or None,
        "n_customers": run.n_customers,
        "propensity": run.propensity,
        "demand": run.demand,
        "created_at": run.created_at.isoformat(),
    }


# --- hooks for the customers app -------------------------------------------------------------
def predictions_for_customers(customer_ids: list[int]) -> dict[int, dict]:
    """Enricher: {customer id: {"predictions": {...}}} from the live run (one query)."""
    rows = CustomerPrediction.objects.filter(
        run__is_live=True, customer_id__in=list(customer_ids)
    ).only(
        "customer_id",
        "p_alive",
        "expected_orders_90d",
        "predicted_clv_365d",
        "expected_next_order_at",
        "churn_risk",
        "churn_probability",
    )
    return {row.customer_id: {"predictions": row.as_api()} for row in rows}


def customer_panel(*, request, customer) -> dict | None:
    """The customer page's "Predictions" place."""
    prediction = prediction_for_customer(customer.pk)
    if prediction is None:
        return None
    organization = getattr(request, "organization", None)
    return {
        "template": "predictions/_customer_predictions.html",
        "context": {
            "customer": customer,
            "prediction": prediction,
            "run": prediction.run,
            "currency": getattr(organization, "currency", ""),
        },
    }


def erase_customers(*, organization, customer_ids: list[int]) -> None:
    from .services import prediction_erase_customers

    prediction_erase_customers(organization=organization, customer_ids=customer_ids)


def product_panel(*, request, product) -> dict | None:
    """The product page's "Demand forecast" place: the live run's forecast, if any."""
    forecast = (
        ProductForecast.objects.filter(run__is_live=True, product_id=product.pk)
        .select_related("run")
        .first()
    )
    if forecast is None:
        return None
    return {"template": "predictions/_product_demand.html", "context": {"forecast": forecast}}
