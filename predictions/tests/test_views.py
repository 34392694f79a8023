"""The predictions pages: empty states, the run button and its progress, the
accuracy panel, value, top and at-risk customers with the one-click segment, demand,
the minimum-data message, settings, sub-pages, the customer page panel, who may do
what, and 404 for another organisation's ids."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from accounts.tenancy import tenant_context
from core.models import Job
from predictions.models import PredictionRun, PredictionSettings, ProductForecast
from predictions.services import prediction_run
from predictions.tests.factories import build_world, simulate_world, write_world
from segmentation.models import SegmentKind

AS_OF = dt.date(2024, 6, 30)


def _write(org, n: int, **kwargs):
    kwargs.setdefault("history_days", 400)
    return write_world(org, simulate_world(n_customers=n, as_of=AS_OF, **kwargs))


@pytest.fixture
def live(org):
    pk_of = _write(org, 800, seed=11)
    with tenant_context(org):
        run = prediction_run(organization=org)
    return run, pk_of


def _charts(response) -> dict:
    match = re.search(
        rb'<script id="prediction-charts" type="application/json">(.*?)</script>',
        response.content,
        re.S,
    )
    assert match, "chart data missing"
    return json.loads(match.group(1))


def test_empty_state_without_orders(owner_client):
    response = owner_client.get("/segments/predictions/")
    assert response.status_code == 200
    assert b"No orders yet" in response.content
    assert b"Make predictions" not in response.content


def test_with_orders_the_owner_is_offered_the_run(owner_client, org):
    _write(org, 20, seed=1)
    response = owner_client.get("/segments/predictions/")
    assert b"No predictions yet" in response.content
    assert b"Make predictions" in response.content


def test_run_button_starts_a_job_and_shows_its_progress(
    owner_client, org, django_capture_on_commit_callbacks
):
    _write(org, 300, seed=4)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/segments/predictions/run/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'class="job-progress"' in response.content
    with tenant_context(org):
        job = Job.objects.get(kind="predictions")
        assert job.status == "succeeded", job.message
        assert job.result["url"] == "/segments/predictions/"
        assert PredictionRun.objects.get(is_live=True).job_id == job.pk
    page = owner_client.get("/segments/predictions/")
    assert b"How accurate has this been?" in page.content


def test_viewer_cannot_start_a_run_or_change_settings(client, viewer, org):
    _write(org, 20, seed=1)
    client.force_login(viewer)
    assert client.post("/segments/predictions/run/").status_code == 403
    assert (
        client.post(
            "/segments/predictions/settings/", {"annual_discount_rate_percent": "20"}
        ).status_code
        == 403
    )
    assert client.post("/segments/predictions/at-risk/segment/").status_code == 403
    with tenant_context(org):
        assert not Job.objects.exists()
        assert not PredictionSettings.objects.exists()
    page = client.get("/segments/predictions/")
    assert page.status_code == 200
    assert b"Make predictions" not in page.content


def test_page_shows_accuracy_value_customers_and_demand(owner_client, live):
    run, _ = live
    response = owner_client.get("/segments/predictions/")
    assert response.status_code == 200
    html = response.content.decode()
    # the accuracy panel in plain words, with its charts and their tables
    for sentence in run.backtest["plain_words"]:
        assert sentence.replace("'", "&#x27;") in html
    assert "The top 10% of customers by predicted value made" in html
    assert 'id="chart-weeks"' in html and 'id="chart-calibration"' in html
    assert "vendor/plotly.min.js" in html
    charts = _charts(response)
    assert len(charts["weeks"]["start"]) == 13
    assert charts["calibration"] and charts["histogram"]["counts"]
    # value distribution, top customers, at-risk customers, propensity, demand
    assert 'id="chart-value"' in html
    assert "Top customers by predicted value" in html
    assert "At risk and worth saving" in html
    assert "Likely to order in the next 30 days" in html
    assert "Product demand, next 4 weeks" in html
    assert "/segments/predictions/products/" in html
    # accessible: every table has a caption, charts have text alternatives
    assert html.count("<table") == html.count("<caption")
    assert html.count('role="img"') == html.count('class="chart"')


def test_demand_tab_filters_by_trend(owner_client, live, org):
    run, _ = live
    response = owner_client.get("/segments/predictions/?trend=falling")
    with tenant_context(org):
        falling = ProductForecast.objects.filter(run=run, trend="falling").count()
        steady_sku = ProductForecast.objects.filter(run=run).exclude(trend="falling").first().sku
    assert f"{falling} product" in response.content.decode() or falling == 0
    assert f">{steady_sku}<" not in response.content.decode()


def test_too_little_data_is_said_plainly(owner_client, org):
    _write(org, 40, history_days=50, seed=2)
    with tenant_context(org):
        prediction_run(organization=org)
    html = owner_client.get("/segments/predictions/").content.decode()
    assert "Not enough history for the prediction models yet" in html
    assert "ordered more than once; the models need at least 100" in html
    assert "simple averages" in html
    assert "No back-test for this run" in html


def test_one_click_segment_of_the_customers_worth_saving(owner_client, live, org):
    page = owner_client.get("/segments/predictions/")
    count = page.context["at_risk_count"]
    assert count > 0
    response = owner_client.post("/segments/predictions/at-risk/segment/", {"name": ""})
    assert response.status_code == 302
    with tenant_context(org):
        from segmentation.models import Segment

        segment = Segment.objects.get(kind=SegmentKind.RULE)
    assert response.url == f"/segments/{segment.pk}/"
    assert segment.size == count
    fields = [c["field"] for c in segment.rule["conditions"]]
    assert fields == ["churn_risk", "orders_count", "total_spent"]
    assert segment.name.startswith("Worth saving")
    assert owner_client.get(response.url).status_code == 200


def test_settings_change_the_discount_rate(client, marketer, org):
    client.force_login(marketer)
    response = client.post(
        "/segments/predictions/settings/", {"annual_discount_rate_percent": "12.5"}
    )
    assert response.status_code == 302
    with tenant_context(org):
        assert PredictionSettings.objects.get().annual_discount_rate == pytest.approx(0.125)
    refused = client.post(
        "/segments/predictions/settings/", {"annual_discount_rate_percent": "80"}, follow=True
    )
    assert b"between 0% and 50%" in refused.content
    with tenant_context(org):
        assert PredictionSettings.objects.get().annual_discount_rate == pytest.approx(0.125)


def test_sub_pages(owner_client, live, org):
    run, _ = live
    customers = owner_client.get("/segments/predictions/customers/?churn_risk=high&sort=risk")
    assert customers.status_code == 200
    assert customers.context["page"].paginator.count == run.summary["risk_counts"]["high"]
    assert owner_client.get("/segments/predictions/customers/?sort=propensity").status_code == 200
    runs = owner_client.get("/segments/predictions/runs/")
    assert f"/segments/predictions/runs/{run.pk}/".encode() in runs.content
    assert owner_client.get(f"/segments/predictions/runs/{run.pk}/").status_code == 200
    with tenant_context(org):
        forecast = ProductForecast.objects.filter(run=run).order_by("-total_4w").first()
    product = owner_client.get(f"/segments/predictions/products/{forecast.pk}/")
    assert product.status_code == 200
    assert forecast.label.encode() in product.content
    assert b'id="demand-chart"' in product.content


def test_another_organisations_ids_answer_404(owner_client, live, other_org):
    build_world(other_org)
    with tenant_context(other_org):
        run = PredictionRun.objects.get()
        forecast = ProductForecast.objects.get()
        customer_id = run.customer_predictions.get().customer_id
    assert owner_client.get(f"/segments/predictions/runs/{run.pk}/").status_code == 404
    assert owner_client.get(f"/segments/predictions/products/{forecast.pk}/").status_code == 404
    assert owner_client.get(f"/segments/predictions/customers/{customer_id}/").status_code == 404


def test_customer_panel_shows_predictions_with_reasons(owner_client, live, org):
    run, pk_of = live
    response = owner_client.get(f"/segments/predictions/customers/{pk_of[0]}/")
    assert response.status_code == 200
    html = response.content.decode()
    with tenant_context(org):
        row = run.customer_predictions.get(customer_id=pk_of[0])
    assert "Churn risk" in html and row.get_churn_risk_display() in html
    assert row.reason in html
    assert "Predicted value, next 12 months" in html


def test_customer_page_panel_is_registered(rf, live, org, owner):
    from customers import selectors as customer_selectors
    from customers.models import Customer

    run, pk_of = live
    request = rf.get("/")
    request.user, request.organization = owner, org
    with tenant_context(org):
        customer = Customer.objects.get(pk=pk_of[0])
        panels = {
            p["slot"]: p
            for p in customer_selectors.customer_panels(request=request, customer=customer)
        }
    panel = panels["predictions"]
    assert panel["template"] == "predictions/_customer_predictions.html"
    assert panel["context"]["prediction"].run_id == run.pk


def test_customer_page_shows_stored_predictions_under_one_heading(owner_client, org):
    """Issue 9: the customer page said "No predictions for this customer yet" for every
    customer, under two "Predictions" headings, although predictions were stored."""
    build_world(org)
    with tenant_context(org):
        row = PredictionRun.objects.get().customer_predictions.get()
    response = owner_client.get(f"/customers/{row.customer_id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No predictions for this customer yet" not in html
    assert len(re.findall(r"<h2[^>]*>\s*Predictions\s*</h2>", html)) == 1
    assert row.reason in html
    assert "Predicted value, next 12 months" in html
    assert "120.00" in html  # predicted_clv_365d
    assert "20 July 2024" in html  # expected next order


def test_product_page_shows_the_live_demand_forecast(owner_client, org):
    """The predictions capability declares a product-page place (issue 9)."""
    build_world(org)
    with tenant_context(org):
        forecast = ProductForecast.objects.get()
    html = owner_client.get(f"/customers/products/{forecast.product_id}/").content.decode()
    assert 'id="panel-demand"' in html
    assert "Demand forecast" in html and forecast.label in html
    assert f"/segments/predictions/products/{forecast.pk}/" in html


def test_demand_figures_say_which_weeks_they_cover_and_the_trend_agrees(owner_client, live, org):
    """Issue 9: "Rising 481%" stood beside a forecast falling from 1,641 to 1,428
    units, under headings that did not say which weeks each figure covered."""
    run, _ = live
    html = owner_client.get("/segments/predictions/").content.decode()
    for heading in (
        "Sold, last 4 weeks",
        "Expected, next 4 weeks",
        "Likely range, next 4 weeks",
        "Next 4 weeks vs last 4",
    ):
        assert heading in html
    with tenant_context(org):
        forecasts = list(ProductForecast.objects.filter(run=run))
    assert forecasts
    for f in forecasts:
        assert f.lower_4w <= f.total_4w <= f.upper_4w, f.sku
        if f.trend == "rising":
            assert f.total_4w > f.units_last_4w, f.sku
        if f.trend == "falling":
            assert f.total_4w < f.units_last_4w, f.sku
    biggest = max(forecasts, key=lambda f: f.total_4w)
    page = owner_client.get(f"/segments/predictions/products/{biggest.pk}/").content.decode()
    assert "Sold, last 4 weeks" in page and "Expected, next 4 weeks" in page
    assert f"{round(biggest.units_last_4w):,} sold in the last 4 weeks" in page
    # the method's name is in the "About this model" section, not the main text
    main, _, about = page.partition('<details id="about-model">')
    assert biggest.method_label not in main and biggest.method_label in about
