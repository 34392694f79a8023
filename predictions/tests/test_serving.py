"""What a run serves, end to end on planted customers: the overdue valuable regular is
at high risk and on the "At risk and worth saving" list; the page, the customer panel
and the API say in plain words what is served and how far off it was."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.tenancy import tenant_context
from predictions import selectors
from predictions.models import CustomerPrediction
from predictions.services import prediction_run
from predictions.tests.factories import write_world
from predictions.tests.planted import ON_RHYTHM, OVERDUE, planted_world

AS_OF = dt.date(2024, 6, 30)


@pytest.fixture
def planted(org):
    pk_of = write_world(org, planted_world(as_of=AS_OF, n_regulars=500, n_occasional=300, seed=3))
    with tenant_context(org):
        run = prediction_run(organization=org, as_of=AS_OF)
    return run, pk_of


def test_overdue_valuable_regular_is_high_risk_and_worth_saving(planted, org):
    run, pk_of = planted
    with tenant_context(org):
        overdue = CustomerPrediction.objects.get(run=run, customer_id=pk_of[OVERDUE])
        on_rhythm = CustomerPrediction.objects.get(run=run, customer_id=pk_of[ON_RHYTHM])
        assert overdue.churn_risk == "high"
        assert on_rhythm.churn_risk == "low"
        worth_saving = list(selectors.at_risk_customers(run).values_list("customer_id", flat=True))
    assert worth_saving, "high-risk valuable customers exist, the list must not be empty"
    assert pk_of[OVERDUE] in worth_saving
    assert pk_of[ON_RHYTHM] not in worth_saving
    assert run.summary["served"]["churn"] != "baseline"


def test_page_and_panel_say_what_is_served_and_how_accurate(owner_client, planted, org):
    run, pk_of = planted
    html = owner_client.get("/segments/predictions/").content.decode()
    assert "What these predictions are based on" in html
    served = run.summary["served"]
    if served["orders"] == "baseline":
        assert "Expected orders assume each customer keeps their past pace" in html
    else:
        assert "We predict next-90-day orders with" in html
        assert "if we assumed everyone kept their past pace" in html
    # model names and statistics only in "about this model"
    about = html.index("About this model")
    for name in ("BG/NBD", "AUC", "Brier"):
        assert html.index(name) > about, name
    runs = owner_client.get("/segments/predictions/runs/").content.decode()
    bt = run.backtest
    assert f"{bt['mae_per_customer']:.2f} ({bt['mae_same_pace']:.2f})" in runs
    panel = owner_client.get(f"/segments/predictions/customers/{pk_of[OVERDUE]}/")
    text = panel.content.decode()
    assert "orders per customer" in text
    assert "No order for 100 days, usually orders every 25 days" in text


def test_pages_do_not_show_bgnbd_still_a_customer_beside_the_served_churn(
    owner_client, planted, org
):
    """BG/NBD's "probability still a customer" said 100% beside a high churn risk when
    another churn model is served: the pages show the served churn figure only."""
    run, pk_of = planted
    with tenant_context(org):
        overdue = CustomerPrediction.objects.get(run=run, customer_id=pk_of[OVERDUE])
    pages = [
        "/segments/predictions/",
        "/segments/predictions/customers/",
        f"/segments/predictions/customers/{pk_of[OVERDUE]}/",
        f"/customers/{pk_of[OVERDUE]}/",
    ]
    for url in pages:
        html = owner_client.get(url).content.decode()
        assert "Still a customer" not in html, url
    panel = owner_client.get(f"/customers/{pk_of[OVERDUE]}/").content.decode()
    assert f"{round(overdue.churn_probability * 100)}% chance of no order" in panel


def test_api_names_what_each_prediction_serves(api_read, planted):
    run, _ = planted
    body = api_read.get("/api/v1/predictions/models/latest/").json()
    assert body["served"] == run.summary["served"]
    assert body["kind"] == "bgnbd" and set(body["params"]) == {"r", "alpha", "a", "b"}
    bt = body["backtest"]
    assert bt["mae_per_customer"] < bt["mae_same_pace"]  # a model beat same pace here
    assert bt["calibration_by_band"]
