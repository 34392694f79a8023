"""Reads for predictions: the live run, its customers and products, and the hooks
through which the customers app shows them (customer page panel, the customers
API's `predictions` field, erasure).

Every query goes through the scoped managers (current organisation only).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.kept import kept_callable, kept_get, kept_store

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


RUN_LIST_TIMEOUT = 3600  # a run's lists; customers' totals move with orders: an hour behind at most
WORKING = None  # a list still being worked out (a big organisation's page says so)


def _list_rows(name: str, run: PredictionRun) -> QuerySet[CustomerPrediction]:
    if name == "at_risk":
        return at_risk_customers(run)
    return (
        customer_predictions(run=run).filter(propensity__isnull=False).order_by("-propensity", "pk")
    )


def _list_figures(name: str, run: PredictionRun, limit: int) -> dict:
    rows = _list_rows(name, run)
    ids = list(rows.values_list("pk", flat=True)[:limit])
    return {"ids": ids, "count": rows.count() if len(ids) >= limit else len(ids)}


def _list_version(run: PredictionRun) -> str:
    return f"run{run.pk}-{run.created_at:%Y%m%d%H%M%S%f}"


def _list_name(name: str, limit: int) -> str:
    return f"predictions:{name}:{limit}"


@kept_callable
def page_list_refresh(*, organization, name: str, run_id: int, limit: int) -> None:
    """Work out and keep one of the predictions page's lists of a run (`_kept_rows`):
    a background refresh, or the run's job as it ends (`services._warm_page_lists`)."""
    run = PredictionRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    version = _list_version(run)
    kept_store(name=_list_name(name, limit), version=version, value=_list_figures(name, run, limit))


def _kept_rows(
    name: str, run: PredictionRun, limit: int
) -> tuple[list[CustomerPrediction], int] | None:
    """The first `limit` of a run's list `name` (at risk, likely buyers) and how many
    there are. The ids and count are kept per organisation and run (`core.kept`),
    worked out by the run's job as it ends (`services._warm_page_lists`): worked out,
    they join every prediction of the run to its customer and sort (1.4–2.4 s each at
    a million customers, 9.8 s in the load test). A big organisation's page never
    works them out: before the job has, it gets `WORKING` (None) while a background
    refresh does, and an hour later the kept list is refreshed in the background
    while it is shown. The rows themselves are read fresh, an erased customer left
    out."""
    version = _list_version(run)
    kept = kept_get(
        name=_list_name(name, limit),
        version=version,
        compute=lambda: _list_figures(name, run, limit),
        max_age=RUN_LIST_TIMEOUT,
        refresh="predictions.selectors:page_list_refresh",
        params={"name": name, "run_id": run.pk, "limit": limit},
        # another run's list names that run's predictions
        earlier_usable=lambda entry: entry["version"] == version,
        first="later",
    )
    if kept.value is None:
        return WORKING
    found = (
        CustomerPrediction.objects.filter(
            pk__in=kept.value["ids"], customer__erased_at__isnull=True
        )
        .select_related("customer")
        .in_bulk()
    )
    return [found[i] for i in kept.value["ids"] if i in found], kept.value["count"]


AT_RISK_SHOWN = 20
LIKELY_SHOWN = 10


def at_risk_shown(
    run: PredictionRun, limit: int = AT_RISK_SHOWN
) -> tuple[list[CustomerPrediction] | None, int | None]:
    """The first `limit` of `at_risk_customers` and how many there are (`_kept_rows`);
    (None, None) while a big organisation's list is being worked out."""
    found = _kept_rows("at_risk", run, limit)
    return found if found is not None else (None, None)


def likely_buyers(run: PredictionRun, limit: int = LIKELY_SHOWN) -> list[CustomerPrediction] | None:
    """The customers most likely to order (`_kept_rows`); None while a big
    organisation's list is being worked out."""
    if not run.propensity or run.propensity.get("method") == "heuristic":
        return []
    found = _kept_rows("likely_buyers", run, limit)
    return found[0] if found is not None else None


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
    "mae_same_pace",
    "top_decile_revenue_share",
    "calibration_by_band",
)

SERVED_KEYS = ("orders", "value", "churn", "propensity")


def served_kinds(run: PredictionRun) -> dict[str, str]:
    """What each customer-facing prediction of the run uses: `bgnbd`, another model kind
    (`gradient_boosting`) or `baseline`. Runs stored before the choice was made served
    BG/NBD (or the averages, the baseline, on thin data) and their propensity model."""
    stored = (run.summary or {}).get("served") or {}
    fitted = "baseline" if run.is_heuristic else "bgnbd"
    prop = (run.propensity or {}).get("method")
    fallback = {
        "orders": fitted,
        "value": fitted,
        "churn": fitted,
        "propensity": "gradient_boosting" if prop == "gradient_boosting" else "baseline",
    }
    return {k: stored.get(k) or fallback[k] for k in SERVED_KEYS}


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
        "served": served_kinds(run),
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
            "served_sentences": served_sentences(
                prediction.run, currency=getattr(organization, "currency", "")
            ),
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


# --- what is served, in plain words ----------------------------------------------------------
SERVED_WORDS = {
    "bgnbd": "a model of each customer's buying rhythm",
    "gradient_boosting": "a model trained on how your customers behaved before",
}
MODEL_NAMES = {
    "bgnbd": "BG/NBD (Gamma-Gamma for spend)",
    "gradient_boosting": "Gradient-boosted trees on recency, frequency, spend and rhythm",
    "heuristic": "Simple averages",
}
BASELINE_NAMES = {
    "orders": "Same pace: repeat orders ÷ days as a customer",
    "value": "Same pace × the customer's average order",
    "churn": "Ranking by days since the last order",
    "propensity": "The shop's average chance (base rate)",
}
METRIC_NAMES = {
    "mae": "MAE per customer (lower is better)",
    "auc": "AUC (higher is better)",
    "brier": "Brier score (lower is better)",
}


def _scores(run: PredictionRun) -> tuple[dict, dict, int | None]:
    candidates = (run.backtest or {}).get("candidates") or {}
    return (
        candidates.get("scores") or {},
        candidates.get("metric") or {},
        candidates.get("horizon_days"),
    )


def served_sentences(run: PredictionRun, *, currency: str = "") -> list[str]:
    """One plain sentence per prediction: what it is based on and how far off it was
    on the owner's own back-test (model names stay in "about this model")."""
    served = served_kinds(run)
    scores, _, h = _scores(run)
    if not scores:
        if run.backtest:  # a run stored before the back-test compared models
            return []
        return [
            "There is not enough order history yet to check predictions against what "
            "happened, so every figure is a simple rule: each customer keeps their past "
            "pace, and churn risk is the chance of a quiet spell."
        ]
    out = []
    o = scores.get("orders", {})
    kind = served["orders"]
    if kind != "baseline":
        out.append(
            f"We predict next-{h}-day orders with {SERVED_WORDS.get(kind, kind)}: on your "
            f"own orders it was off by {o.get(kind, 0):.2f} orders per customer, vs "
            f"{o.get('baseline', 0):.2f} if we assumed everyone kept their past pace."
        )
    else:
        out.append(
            "Expected orders assume each customer keeps their past pace: no model did "
            f"better on your own orders (that rule was off by {o.get('baseline', 0):.2f} "
            f"orders per customer over {h} days)."
        )
    v = scores.get("value", {})
    kind = served["value"]
    cur = f" {currency}" if currency else ""
    if kind != "baseline":
        out.append(
            f"Predicted value comes from {SERVED_WORDS.get(kind, kind)}: over {h} days it "
            f"was off by {v.get(kind, 0):,.0f}{cur} per customer, vs "
            f"{v.get('baseline', 0):,.0f}{cur} at their past pace."
        )
    else:
        out.append(
            "Predicted value assumes each customer keeps their past pace and average order: "
            f"no model did better (off by {v.get('baseline', 0):,.0f}{cur} per customer over "
            f"{h} days)."
        )
    c = scores.get("churn", {})
    kind = served["churn"]
    if kind != "baseline":
        out.append(
            f"Churn risk comes from {SERVED_WORDS.get(kind, kind)}: of two customers, one who "
            f"then did not order and one who did, it rated the first riskier "
            f"{round(100 * (c.get(kind) or 0))} times in 100, vs "
            f"{round(100 * (c.get('baseline') or 0))} going by the time since their last "
            "order alone."
        )
    else:
        out.append(
            "Churn risk goes by the time since each customer's last order: no model told "
            "better who would stop ordering."
        )
    p = scores.get("propensity", {})
    kind = served["propensity"]
    if kind != "baseline":
        out.append(
            f"The chance to order in the next 30 days comes from "
            f"{SERVED_WORDS.get(kind, kind)}: its chances were closer to what happened than "
            "giving everyone the shop's average."
        )
    elif p:
        out.append(
            "Everyone gets the shop's average chance to order in the next 30 days: no model "
            "did better on your own orders."
        )
    return out


def about_models(run: PredictionRun) -> list[dict[str, Any]]:
    """Rows for "about this model": per prediction, the served kind and every candidate's
    back-test score."""
    served = served_kinds(run)
    scores, metric, _ = _scores(run)
    rows = []
    for key, label in (
        ("orders", "Orders"),
        ("value", "Value"),
        ("churn", "Churn risk"),
        ("propensity", "Chance to order in 30 days"),
    ):
        kind = served[key]
        rows.append(
            {
                "prediction": label,
                "served": BASELINE_NAMES[key]
                if kind == "baseline"
                else MODEL_NAMES.get(kind, kind),
                "metric": METRIC_NAMES.get(metric.get(key, ""), ""),
                "scores": [
                    {
                        "kind": BASELINE_NAMES[key] if k == "baseline" else MODEL_NAMES.get(k, k),
                        "score": v,
                        "served": k == kind,
                    }
                    for k, v in (scores.get(key) or {}).items()
                ],
            }
        )
    return rows
