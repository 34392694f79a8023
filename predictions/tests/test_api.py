"""The predictions API (CONTRACT.md): `predictions/models/latest/` is 404 before any
run and has the contract's shape after; the live run's customers and products;
runs; settings; write permissions; 404 for another organisation's ids; and the
customers API's `predictions` field."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.tenancy import tenant_context
from core.models import Job
from predictions.models import CustomerPrediction, PredictionRun, ProductForecast
from predictions.services import prediction_run
from predictions.tests.factories import build_world, simulate_world, write_world

AS_OF = dt.date(2024, 6, 30)
CONTRACT_KEYS = {"kind", "time_unit", "params", "spend_params", "as_of", "backtest", "served"}
BACKTEST_KEYS = [
    "cutoff",
    "horizon_days",
    "predicted_orders",
    "actual_orders",
    "mae_per_customer",
    "mae_same_pace",
    "top_decile_revenue_share",
    "calibration_by_band",
]
SERVED_KINDS = {"bgnbd", "gradient_boosting", "baseline"}
CUSTOMER_PREDICTION_KEYS = {
    "p_alive",
    "expected_orders_90d",
    "predicted_clv_365d",
    "expected_next_order_at",
    "churn_risk",
    "churn_probability",
}


@pytest.fixture
def live(org):
    world = simulate_world(n_customers=800, as_of=AS_OF, history_days=400, seed=11)
    pk_of = write_world(org, world)
    with tenant_context(org):
        run = prediction_run(organization=org)
    return run, pk_of


def test_latest_model_is_404_before_any_run(api_read):
    response = api_read.get("/api/v1/predictions/models/latest/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "No prediction run yet" in error["message"]


def test_latest_model_has_the_contract_shape(api_read, live):
    run, _ = live
    response = api_read.get("/api/v1/predictions/models/latest/")
    assert response.status_code == 200
    body = response.json()
    assert CONTRACT_KEYS <= set(body)
    assert body["kind"] == "bgnbd"
    assert body["time_unit"] == "day"
    assert set(body["params"]) == {"r", "alpha", "a", "b"}
    assert all(isinstance(v, float) and v > 0 for v in body["params"].values())
    assert set(body["spend_params"]) == {"p", "q", "gamma"}
    assert body["as_of"] == "2024-06-30"
    assert list(body["backtest"])[:8] == BACKTEST_KEYS
    assert body["backtest"]["cutoff"] == "2024-04-01"
    assert body["backtest"]["horizon_days"] == 90
    assert isinstance(body["backtest"]["actual_orders"], int)
    assert body["run_id"] == run.pk
    assert body["data_check"]["ok"] is True
    served = body["served"]
    assert set(served) == {"orders", "value", "churn", "propensity"}
    assert set(served.values()) <= SERVED_KINDS
    # the back-test describes the served order model
    bt = body["backtest"]
    assert bt["mae_same_pace"] > 0
    assert {row["group"] for row in bt["calibration_by_band"]} <= {"low", "medium", "high"}
    if served["orders"] == "baseline":
        assert bt["mae_per_customer"] == pytest.approx(bt["mae_same_pace"])
    else:
        assert bt["mae_per_customer"] < bt["mae_same_pace"]


def test_every_served_model_beat_its_baseline_on_the_backtest(api_read, live):
    body = api_read.get("/api/v1/predictions/models/latest/").json()
    candidates = body["backtest"]["candidates"]
    scores, metric = candidates["scores"], candidates["metric"]
    for prediction, kind in body["served"].items():
        score = scores[prediction]
        if kind == "baseline":
            continue
        if metric[prediction] == "auc":
            assert score[kind] > score["baseline"], prediction
        else:
            assert score[kind] < score["baseline"], prediction


def test_latest_model_says_when_it_is_only_simple_averages(api_read, org):
    write_world(org, simulate_world(n_customers=40, as_of=AS_OF, history_days=50, seed=2))
    with tenant_context(org):
        prediction_run(organization=org)
    body = api_read.get("/api/v1/predictions/models/latest/").json()
    assert body["kind"] == "heuristic"
    assert body["params"] is None and body["spend_params"] is None
    assert body["backtest"] is None and "back-test needs" in body["backtest_note"]
    # nothing could be shown to beat the naive rules: the rules are served
    assert body["served"] == {
        "orders": "baseline",
        "value": "baseline",
        "churn": "baseline",
        "propensity": "baseline",
    }
    assert body["data_check"]["ok"] is False
    assert any("ordered more than once" in m for m in body["data_check"]["missing"])


def test_customer_predictions_list_filters_and_orders(api_read, live):
    run, _ = live
    body = api_read.get("/api/v1/predictions/customers/?page_size=1000").json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert body["count"] == run.n_customers
    values = [r["predicted_clv_365d"] for r in body["results"]]
    assert values == sorted(values, reverse=True)
    first = body["results"][0]
    assert set(first["customer"]) == {"id", "external_id"}
    assert first["churn_risk"] in ("low", "medium", "high")
    assert first["reason"]

    high = api_read.get("/api/v1/predictions/customers/?churn_risk=high&page_size=1000").json()
    assert high["count"] == run.summary["risk_counts"]["high"]
    assert {r["churn_risk"] for r in high["results"]} == {"high"}
    both = api_read.get("/api/v1/predictions/customers/?churn_risk=low,medium").json()
    assert both["count"] == run.n_customers - high["count"]

    by_risk = api_read.get("/api/v1/predictions/customers/?ordering=-churn_probability").json()
    risks = [r["churn_probability"] for r in by_risk["results"]]
    assert risks == sorted(risks, reverse=True)

    bad = api_read.get("/api/v1/predictions/customers/?ordering=email")
    assert bad.status_code == 400
    assert "Cannot order by 'email'" in bad.json()["error"]["message"]
    assert api_read.get("/api/v1/predictions/customers/?churn_risk=extreme").status_code == 400


def test_product_forecasts_list_and_detail(api_read, live, org):
    run, _ = live
    body = api_read.get("/api/v1/predictions/products/").json()
    assert body["count"] == run.n_products
    first = body["results"][0]
    assert len(first["weeks"]) == 4
    assert set(first["weeks"][0]) == {"start", "units", "lower", "upper"}
    assert first["trend"] in ("rising", "falling", "steady", "insufficient")
    totals = [r["total_4w"] for r in body["results"]]
    assert totals == sorted(totals, reverse=True)
    detail = api_read.get(f"/api/v1/predictions/products/{first['id']}/").json()
    assert detail["sku"] == first["sku"]
    steady = api_read.get("/api/v1/predictions/products/?trend=steady").json()
    assert all(r["trend"] == "steady" for r in steady["results"])


def test_runs_list_and_detail(api_read, live):
    run, _ = live
    body = api_read.get("/api/v1/predictions/runs/").json()
    assert [r["id"] for r in body["results"]] == [run.pk]
    assert list(body["results"][0]["backtest"]) == BACKTEST_KEYS
    detail = api_read.get(f"/api/v1/predictions/runs/{run.pk}/").json()
    assert detail["is_live"] is True
    assert detail["backtest"]["plain_words"]
    assert detail["settings"]["annual_discount_rate"] == pytest.approx(0.1)


def test_another_organisations_ids_answer_404(api_read, live, other_org):
    build_world(other_org)
    with tenant_context(other_org):
        run = PredictionRun.objects.get()
        forecast = ProductForecast.objects.get()
    assert api_read.get(f"/api/v1/predictions/runs/{run.pk}/").status_code == 404
    assert api_read.get(f"/api/v1/predictions/products/{forecast.pk}/").status_code == 404
    with tenant_context(other_org):
        other_customer = CustomerPrediction.objects.get().customer_id
    listed = api_read.get(f"/api/v1/predictions/customers/?customer={other_customer}").json()
    assert listed["count"] == 0


def test_starting_a_run_needs_write_access(api_read, api, org):
    write_world(org, simulate_world(n_customers=30, as_of=AS_OF, seed=1))
    refused = api_read.post("/api/v1/predictions/runs/", {}, format="json")
    assert refused.status_code == 403
    started = api.post("/api/v1/predictions/runs/", {"as_of": "2024-05-31"}, format="json")
    assert started.status_code == 202
    with tenant_context(org):
        job = Job.objects.get(pk=started.json()["job"])
    assert job.kind == "predictions"
    assert job.params["as_of"] == "2024-05-31"


def test_settings_read_and_change(api_read, api, org):
    assert api_read.get("/api/v1/predictions/settings/").json() == {"annual_discount_rate": 0.1}
    assert (
        api_read.patch(
            "/api/v1/predictions/settings/", {"annual_discount_rate": 0.2}, format="json"
        ).status_code
        == 403
    )
    changed = api.patch(
        "/api/v1/predictions/settings/", {"annual_discount_rate": 0.2}, format="json"
    )
    assert changed.json() == {"annual_discount_rate": 0.2}
    too_high = api.patch(
        "/api/v1/predictions/settings/", {"annual_discount_rate": 0.9}, format="json"
    )
    assert too_high.status_code == 400


def test_customers_api_carries_each_customers_predictions(api_read, live, org):
    run, pk_of = live
    with tenant_context(org):
        row = CustomerPrediction.objects.get(run=run, customer_id=pk_of[0])
    body = api_read.get("/api/v1/customers/?external_id=C0000000").json()
    customer = body["results"][0]
    assert customer["id"] == pk_of[0]
    assert set(customer["predictions"]) == CUSTOMER_PREDICTION_KEYS
    assert customer["predictions"]["churn_risk"] == row.churn_risk
    assert customer["predictions"]["predicted_clv_365d"] == pytest.approx(row.predicted_clv_365d)
    assert customer["predictions"]["p_alive"] == pytest.approx(row.p_alive)
    expected_next = row.expected_next_order_at
    assert customer["predictions"]["expected_next_order_at"] == (
        expected_next.isoformat() if expected_next else None
    )
    one = api_read.get(f"/api/v1/customers/{pk_of[0]}/").json()
    assert one["predictions"] == customer["predictions"]


def test_customers_api_predictions_is_null_without_a_run(api_read, org):
    write_world(org, simulate_world(n_customers=5, as_of=AS_OF, seed=1))
    body = api_read.get("/api/v1/customers/").json()
    assert body["results"] and all(c["predictions"] is None for c in body["results"])


def test_schema_documents_the_endpoints(api_read, owner_client):
    response = owner_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for p in (
        "/api/v1/predictions/models/latest/",
        "/api/v1/predictions/customers/",
        "/api/v1/predictions/products/",
        "/api/v1/predictions/runs/",
        "/api/v1/predictions/runs/{id}/",
        "/api/v1/predictions/settings/",
    ):
        assert p in paths, p
