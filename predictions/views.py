"""Site pages for predictions (mounted at /segments/, names `prediction…`).

Views are thin: read through `selectors_predictions`, write through
`services.predictions`, render. Objects are looked up through the scoped managers
with `get_object_or_404`, so another organisation's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError
from core.models import Job, JobStatus

from . import selectors, services
from .models import ChurnRisk, PredictionRun, ProductForecast, Trend

PER_PAGE = 50
DEMAND_ROWS = 25
CUSTOMER_SORTS = {
    "value": ("-predicted_clv_365d", "Highest predicted value"),
    "risk": ("-churn_probability", "Highest churn risk"),
    "propensity": ("-propensity", "Most likely to order in 30 days"),
    "orders": ("-expected_orders_90d", "Most expected orders"),
    "next": ("expected_next_order_at", "Soonest next order"),
}


def _latest_job():
    return Job.objects.filter(kind="predictions").order_by("-created_at").first()


def _charts(run: PredictionRun) -> dict[str, Any]:
    """What the page's charts draw (the same figures are in tables beside them)."""
    charts: dict[str, Any] = {"histogram": (run.summary or {}).get("value_histogram")}
    bt = run.backtest
    if bt:
        charts["weeks"] = bt.get("weeks")
        charts["calibration"] = bt.get("calibration_by_decile") or []
        charts["bands"] = bt.get("calibration_by_band") or []
    return charts


def _histogram_rows(histogram: dict | None) -> list[dict[str, Any]]:
    if not histogram or not histogram.get("counts"):
        return []
    edges = histogram["edges"]
    rows = [
        {"low": edges[i], "high": edges[i + 1], "count": c}
        for i, c in enumerate(histogram["counts"])
    ]
    if histogram.get("above"):
        rows.append({"low": edges[-1], "high": None, "count": histogram["above"]})
    return rows


def _week_rows(backtest: dict | None) -> list[tuple]:
    weeks = (backtest or {}).get("weeks") or {}
    return list(
        zip(
            weeks.get("start", []),
            weeks.get("predicted_orders", []),
            weeks.get("actual_orders", []),
            strict=False,
        )
    )


def _page(request, run: PredictionRun | None, *, is_history: bool = False):
    from customers.models import Customer, Order

    job = _latest_job()
    show_job = job is not None and (not job.is_finished or job.status != JobStatus.SUCCEEDED)
    trend = request.GET.get("trend", "")
    context: dict[str, Any] = {
        "run": run,
        "is_history": is_history,
        "job": job if show_job and not is_history else None,
        "has_orders": Order.objects.exists(),
        "has_customers": Customer.objects.exists(),
        "settings_row": services.prediction_settings_get(),
        "currency": request.organization.currency,
        "trend": trend if trend in Trend.values else "",
        "trends": Trend.choices,
    }
    if run is not None:
        at_risk, at_risk_count = selectors.at_risk_shown(run)
        forecasts = selectors.product_forecasts(run=run, trend=context["trend"])
        context.update(
            {
                "charts": _charts(run),
                "histogram_rows": _histogram_rows((run.summary or {}).get("value_histogram")),
                "top_customers": selectors.top_customers(run),
                "at_risk": at_risk,
                "at_risk_count": at_risk_count,
                "at_risk_rule": (run.summary or {}).get("at_risk") or {},
                "likely_buyers": selectors.likely_buyers(run),
                "forecasts": forecasts[:DEMAND_ROWS],
                "forecasts_count": forecasts.count(),
                "risk_counts": (run.summary or {}).get("risk_counts") or {},
                "week_rows": _week_rows(run.backtest),
                "served_sentences": selectors.served_sentences(
                    run, currency=request.organization.currency
                ),
                "about_models": selectors.about_models(run),
            }
        )
    return render(request, "predictions/predictions.html", context)


@org_required
@require_GET
def predictions(request):
    return _page(request, selectors.live_run())


@org_required
@require_GET
def prediction_run_detail(request, pk: int):
    run = get_object_or_404(PredictionRun.objects.all(), pk=pk)
    return _page(request, run, is_history=not run.is_live)


@org_required
@require_GET
def prediction_runs(request):
    return render(
        request,
        "predictions/predictions_runs.html",
        {"runs": selectors.runs_recent(), "currency": request.organization.currency},
    )


@org_required(write=True)
@require_POST
def prediction_run(request):
    try:
        job = services.prediction_run_start(organization=request.organization, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("segmentation:predictions")
    if request.htmx:
        return render(request, "core/_job_progress.html", {"job": job})
    messages.info(request, "Predictions started. They run in the background; progress shows below.")
    return redirect("segmentation:predictions")


@org_required(write=True)
@require_POST
def prediction_settings(request):
    try:
        rate = services.parse_percent(request.POST.get("annual_discount_rate_percent"))
        services.prediction_settings_update(
            organization=request.organization, annual_discount_rate=rate, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Saved: future revenue is discounted at {rate:.1%} a year from the next run."
        )
    return redirect("segmentation:predictions")


@org_required(write=True)
@require_POST
def prediction_at_risk_segment(request):
    try:
        segment = services.at_risk_segment_create(
            organization=request.organization,
            user=request.user,
            name=request.POST.get("name", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("segmentation:predictions")
    messages.success(
        request,
        f"Created the segment “{segment.name}” with {segment.size:,} customers. "
        "It follows each new prediction run.",
    )
    return redirect("segmentation:segment_detail", pk=segment.pk)


@org_required
@require_GET
def prediction_customers(request):
    run = selectors.live_run()
    risk = [r for r in request.GET.getlist("churn_risk") if r in ChurnRisk.values]
    sort = request.GET.get("sort", "value")
    ordering = CUSTOMER_SORTS.get(sort, CUSTOMER_SORTS["value"])[0]
    qs = selectors.customer_predictions(run=run, churn_risk=risk, ordering=ordering)
    if sort in ("propensity", "next"):
        qs = qs.exclude(**{ordering.lstrip("-") + "__isnull": True})
    page = Paginator(qs, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "predictions/predictions_customers.html",
        {
            "run": run,
            "page": page,
            "risk": risk,
            "sort": sort if sort in CUSTOMER_SORTS else "value",
            "sorts": [(k, v[1]) for k, v in CUSTOMER_SORTS.items()],
            "risks": ChurnRisk.choices,
            "currency": request.organization.currency,
        },
    )


@org_required
@require_GET
def prediction_product(request, pk: int):
    forecast = get_object_or_404(ProductForecast.objects.select_related("run"), pk=pk)
    chart = {
        "sku": forecast.sku,
        "history": forecast.history,
        "weeks": forecast.weeks,
    }
    return render(
        request,
        "predictions/predictions_product.html",
        {"forecast": forecast, "run": forecast.run, "chart": chart},
    )


@org_required
@require_GET
def prediction_customer_panel(request, customer_pk: int):
    """The customer's predictions (a fragment for the customer page)."""
    from customers.models import Customer

    customer = get_object_or_404(Customer.objects.filter(erased_at__isnull=True), pk=customer_pk)
    panel = selectors.customer_panel(request=request, customer=customer)
    # The same body the customer page puts in its "Predictions" card.
    return HttpResponse(
        render_to_string(
            "predictions/_customer_predictions.html",
            {"customer": customer, "panel": (panel or {}).get("context", {})},
            request=request,
        )
    )
