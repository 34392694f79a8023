"""Loyalty through the API: the programme (GET/PUT, field errors, the job that
places customers), a customer's standing, exchanging points; read keys only read,
and another organisation's customers answer 404."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from customers.models import Customer, Order
from loyalty.models import LoyaltyAccount, PointsRedemption

pytestmark = pytest.mark.django_db

BODY = {
    "metric": "spend",
    "period_days": 365,
    "points_per_unit": 1,
    "reward_points": 100,
    "reward_value": 5,
    "tiers": [
        {"name": "Bronze", "threshold": 0},
        {"name": "Silver", "threshold": 100},
        {"name": "Gold", "threshold": 500},
    ],
}


@pytest.fixture
def shopper(org):
    with tenant_context(org):
        customer = Customer.objects.create(
            organization=org, external_id="c-1", email="c1@example.com", first_name="Ada"
        )
        Order.objects.create(
            organization=org,
            external_id="o-1",
            customer=customer,
            ordered_at=dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC),
            total=Decimal("250"),
        )
    return customer


def _put(api, body, capture):
    with capture(execute=True):  # the job runs once the request's transaction commits
        return api.put("/api/v1/loyalty/program/", body, format="json")


def test_programme_round_trip_and_customer_standing(
    api, api_read, shopper, django_capture_on_commit_callbacks
):
    missing = api_read.get("/api/v1/loyalty/program/")
    assert missing.status_code == 404
    assert "no loyalty programme yet" in missing.json()["error"]["message"]
    assert api_read.get(f"/api/v1/customers/{shopper.pk}/loyalty/").status_code == 404

    created = _put(api, BODY, django_capture_on_commit_callbacks)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["job"] and body["metric"] == "spend"
    assert [t["name"] for t in body["tiers"]] == ["Bronze", "Silver", "Gold"]

    program = api_read.get("/api/v1/loyalty/program/").json()
    assert program["as_of"] == "2026-06-01" and program["members"] == 1
    assert [t["members"] for t in program["tiers"]] == [0, 1, 0]
    assert program["job"] is None

    standing = api_read.get(f"/api/v1/customers/{shopper.pk}/loyalty/")
    assert standing.status_code == 200
    got = standing.json()
    assert (got["tier"], got["points"], got["next_tier"], got["remaining"]) == (
        "Silver",
        250,
        "Gold",
        250.0,
    )
    assert got["progress"] == pytest.approx(250 / 500)

    changed = _put(api, {**BODY, "period_days": 30}, django_capture_on_commit_callbacks)
    assert changed.status_code == 200 and changed.json()["period_days"] == 30


def test_field_errors_answer_400_and_store_nothing(api):
    bad = {
        **BODY,
        "tiers": [{"name": "Gold", "threshold": 500}, {"name": "Silver", "threshold": 100}],
        "period_days": 0,
    }
    answer = api.put("/api/v1/loyalty/program/", bad, format="json")
    assert answer.status_code == 400
    fields = answer.json()["error"]["fields"]
    assert set(fields) == {"tiers[1].threshold", "period_days"}
    assert api.get("/api/v1/loyalty/program/").status_code == 404
    assert api.put("/api/v1/loyalty/program/", [1, 2], format="json").status_code == 400


def test_read_keys_cannot_write(api_read, shopper):
    assert api_read.put("/api/v1/loyalty/program/", BODY, format="json").status_code == 403
    assert api_read.post(f"/api/v1/customers/{shopper.pk}/loyalty/redeem/").status_code == 403


def test_redeem_issues_a_code_then_refuses_too_few_points(
    api, shopper, django_capture_on_commit_callbacks
):
    _put(api, {**BODY, "reward_points": 200}, django_capture_on_commit_callbacks)
    answer = api.post(f"/api/v1/customers/{shopper.pk}/loyalty/redeem/")
    assert answer.status_code == 201, answer.content
    got = answer.json()
    assert got["points"] == 200 and got["value"] == 5.0 and len(got["code"]) >= 8
    again = api.post(f"/api/v1/customers/{shopper.pk}/loyalty/redeem/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_enough_points"
    assert "has 50 points" in again.json()["error"]["message"]
    with tenant_context(shopper.organization):
        assert PointsRedemption.objects.get().code == got["code"]
        assert LoyaltyAccount.objects.get().points == 50


def test_another_organisations_customer_answers_404(
    api, shopper, other_org, django_capture_on_commit_callbacks
):
    _put(api, BODY, django_capture_on_commit_callbacks)
    _, raw = make_api_key(other_org, "write")
    from rest_framework.test import APIClient

    rival = APIClient()
    rival.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert rival.get(f"/api/v1/customers/{shopper.pk}/loyalty/").status_code == 404
    assert rival.post(f"/api/v1/customers/{shopper.pk}/loyalty/redeem/").status_code == 404
    assert rival.get("/api/v1/loyalty/program/").status_code == 404  # theirs: none
    with tenant_context(shopper.organization):
        assert not PointsRedemption.objects.exists()
    assert api.get("/api/v1/customers/999999/loyalty/").status_code == 404
