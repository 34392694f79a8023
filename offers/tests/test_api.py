"""Offers through the API: create (a job builds it), read, list without the hidden
reward offers, codes, results, change, the fairness override, rebuild and delete;
field errors answer 400 naming the field; read keys only read; another
organisation's offers, codes and results answer 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from offers.models import Offer, OfferRecipient
from offers.redemption import redemptions_refresh
from offers.services import issue_reward_code
from offers.tests.factories import make_order, segment_add, segment_world


@pytest.fixture
def world(org):
    return segment_world(org, n=20)


def _create(api, world, capture, **extra):
    body = {
        "name": "Spring 10%", "kind": "percent", "value": 10,
        "segment_ids": [world["segment"].pk], **extra,
    }  # fmt: skip
    with capture(execute=True):
        return api.post("/api/v1/offers/", body, format="json")


def test_create_builds_and_reads_back(api, world, django_capture_on_commit_callbacks):
    answer = _create(api, world, django_capture_on_commit_callbacks, holdout_share=0.25)
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["status"] == "building" and created["job"]
    one = api.get(f"/api/v1/offers/{created['id']}/").json()
    assert one["status"] == "ready"
    assert (one["recipients"], one["holdout"]) == (15, 5)
    assert one["value"] == 10.0 and one["kind"] == "percent"
    assert one["fairness_flagged"] is False and one["send_problem"] is None

    codes = api.get(f"/api/v1/offers/{created['id']}/codes/?page_size=10").json()
    assert codes["count"] == 15 and len(codes["results"]) == 10 and codes["next"]
    first = codes["results"][0]
    assert set(first) == {"customer", "code"}
    assert set(first["customer"]) == {"id", "external_id"}
    with tenant_context(world["segment"].organization):
        assert OfferRecipient.objects.get(customer_id=first["customer"]["id"]).code == first["code"]

    stats = api.get(f"/api/v1/offers/{created['id']}/stats/").json()
    assert {
        "recipients", "holdout", "redeemed", "revenue", "discount_given", "conversion_rate",
        "holdout_conversion_rate", "incremental_revenue", "interval",
    } <= set(stats)  # fmt: skip
    assert (stats["recipients"], stats["holdout"]) == (15, 5)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"value": 150}, "value"),
        ({"kind": "cashback"}, "kind"),
        ({"segment_ids": [424242]}, "segment_ids"),
        ({"holdout_share": 0.9}, "holdout_share"),
        ({"ends_at": "2020-01-01", "starts_at": "2021-01-01"}, "ends_at"),
        ({"name": ""}, "name"),
        ({"max_redemptions_per_code": "many"}, "max_redemptions_per_code"),
    ],
)
def test_bad_fields_answer_400_naming_the_field(
    api, world, django_capture_on_commit_callbacks, extra, field
):
    answer = _create(api, world, django_capture_on_commit_callbacks, **extra)
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert field in error["fields"] and error["message"]
    assert not Offer.all_objects.exists()


def test_a_body_that_is_not_an_object_answers_400(api):
    answer = api.post("/api/v1/offers/", [1, 2], format="json")
    assert answer.status_code == 400


def test_read_keys_only_read(api_read, world):
    answer = api_read.post(
        "/api/v1/offers/",
        {"name": "X", "kind": "percent", "value": 5, "segment_ids": [world["segment"].pk]},
        format="json",
    )
    assert answer.status_code == 403
    assert api_read.get("/api/v1/offers/").status_code == 200


def test_the_list_hides_loyalty_reward_offers(org, api, world, django_capture_on_commit_callbacks):
    _create(api, world, django_capture_on_commit_callbacks)
    with tenant_context(org):
        issue_reward_code(organization=org, customer=world["customers"][0], value=5)
        reward = Offer.objects.get(is_reward=True)
    names = [o["name"] for o in api.get("/api/v1/offers/").json()["results"]]
    assert names == ["Spring 10%"]
    assert api.get(f"/api/v1/offers/{reward.pk}/").status_code == 404
    assert api.get(f"/api/v1/offers/{reward.pk}/codes/").status_code == 404


def test_change_rebuild_and_delete(org, api, world, django_capture_on_commit_callbacks):
    offer_id = _create(api, world, django_capture_on_commit_callbacks).json()["id"]
    answer = api.patch(
        f"/api/v1/offers/{offer_id}/", {"name": "Spring 15%", "value": 15}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["value"] == 15.0 and answer.json()["status"] == "building"
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(f"/api/v1/offers/{offer_id}/rebuild/")
    assert answer.status_code == 202 and answer.json()["job"]
    with tenant_context(org):
        recipient = (
            OfferRecipient.objects.filter(offer_id=offer_id, holdout=False)
            .select_related("customer")
            .first()
        )
        make_order(org, recipient.customer, code=recipient.code)
        redemptions_refresh(organization=org)
    # in use: the kind and value are fixed, the end is not
    answer = api.patch(f"/api/v1/offers/{offer_id}/", {"value": 20}, format="json")
    assert answer.status_code == 409 and "value" in answer.json()["error"]["fields"]
    answer = api.patch(f"/api/v1/offers/{offer_id}/", {"ends_at": "2099-12-31"}, format="json")
    assert answer.status_code == 200
    assert api.get(f"/api/v1/offers/{offer_id}/stats/").json()["redeemed"] == 1
    assert api.delete(f"/api/v1/offers/{offer_id}/").status_code == 204
    assert not Offer.all_objects.filter(pk=offer_id).exists()


def test_fairness_override_through_the_api(org, owner, world, django_capture_on_commit_callbacks):
    from customers.models import Customer

    with tenant_context(org):
        Customer.objects.filter(pk__in=[c.pk for c in world["customers"]]).update(gender="female")
        men = [
            Customer.objects.create(organization=org, external_id=f"M{i}", gender="male")
            for i in range(40)
        ]
        women = [
            Customer.objects.create(organization=org, external_id=f"W{i}", gender="female")
            for i in range(20)
        ]
    segment_add(org, world, men[:1])
    _ = women
    client = APIClient()
    client.force_authenticate(owner)  # a person: the override names them
    client.force_login(owner)
    created = _create(client, world, django_capture_on_commit_callbacks, holdout_share=0).json()
    one = client.get(f"/api/v1/offers/{created['id']}/").json()
    assert one["fairness_flagged"] is True and "fairness" in one["send_problem"]
    url = f"/api/v1/offers/{created['id']}/fairness-override/"
    short = client.post(url, {"reason": "ok"}, format="json")
    assert short.status_code == 400 and "reason" in short.json()["error"]["fields"]
    answer = client.post(url, {"reason": "A thank-you to our sewing-club members."}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["override"]["reason"] == "A thank-you to our sewing-club members."
    assert answer.json()["send_problem"] is None
    with tenant_context(org):
        entry = AuditLogEntry.objects.get(action="offer.fairness_override")
    assert entry.actor == owner and "sewing-club" in entry.details["reason"]


def test_another_organisations_offer_codes_and_results_answer_404(
    org, other_org, api, world, django_capture_on_commit_callbacks
):
    offer_id = _create(api, world, django_capture_on_commit_callbacks).json()["id"]
    _, raw = make_api_key(other_org, "write")
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    for path in ("", "codes/", "stats/"):
        assert theirs.get(f"/api/v1/offers/{offer_id}/{path}").status_code == 404, path
    assert theirs.post(f"/api/v1/offers/{offer_id}/rebuild/").status_code == 404
    assert (
        theirs.post(
            f"/api/v1/offers/{offer_id}/fairness-override/", {"reason": "x" * 20}, format="json"
        ).status_code
        == 404
    )
    assert theirs.delete(f"/api/v1/offers/{offer_id}/").status_code == 404
    assert theirs.get("/api/v1/offers/").json()["results"] == []
    assert Offer.all_objects.filter(pk=offer_id).exists()
