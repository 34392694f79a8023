"""Stores through the API: the contract's shape, every rule answered 400 with the
field named, changes checked as a whole, and another organisation's store is 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from stores.models import Store

URL = "/api/v1/stores/"


def _create(api, **body):
    return api.post(URL, body, format="json")


def test_create_read_list_and_shape(api, org):
    response = _create(
        api,
        name=" Soho ",
        address="12 Dean Street, London",
        latitude=51.5136,
        longitude=-0.1317,
        postal_prefixes=[" w1d ", "w1f", "W1D", "sw1 a"],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "name", "address", "latitude", "longitude", "postal_prefixes"} <= set(body)
    assert body["name"] == "Soho"
    assert body["postal_prefixes"] == ["W1D", "W1F", "SW1A"]  # upper-case, no spaces, once
    assert (body["latitude"], body["longitude"]) == (51.5136, -0.1317)
    assert api.get(f"{URL}{body['id']}/").json()["name"] == "Soho"
    listed = api.get(URL).json()["results"]
    assert [s["id"] for s in listed] == [body["id"]]


def test_a_store_with_postcodes_only(api):
    response = _create(api, name="Market stall", postal_prefixes=["75001"])
    assert response.status_code == 201, response.content
    assert response.json()["latitude"] is None


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "", "latitude": 1, "longitude": 1}, "name", "name"),
        ({"latitude": 1, "longitude": 1}, "name", "required"),
        ({"name": "A", "latitude": 91, "longitude": 0}, "latitude", "between -90 and 90"),
        ({"name": "A", "latitude": 0, "longitude": -180.5}, "longitude", "between -180 and 180"),
        ({"name": "A", "latitude": "north", "longitude": 0}, "latitude", "number"),
        ({"name": "A", "latitude": 51.5}, "longitude", "both"),
        ({"name": "A", "longitude": -0.1, "postal_prefixes": ["W1"]}, "latitude", "both"),
        ({"name": "A"}, "postal_prefixes", "Say where"),
        ({"name": "A", "postal_prefixes": []}, "latitude", "Say where"),
        ({"name": "A", "postal_prefixes": ["W1!"]}, "postal_prefixes", "letters, digits"),
        ({"name": "A", "postal_prefixes": ["ABCDEFGHIJK"]}, "postal_prefixes", "too long"),
        ({"name": "A", "postal_prefixes": "W1"}, "postal_prefixes", "list"),
    ],
)
def test_invalid_stores_name_the_field(api, body, field, words):
    response = _create(api, **body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"], error
    assert words.lower() in (error["fields"][field] + error["message"]).lower(), error


def test_patch_changes_only_what_is_sent_and_checks_the_whole(api, org):
    created = _create(api, name="Soho", latitude=51.5, longitude=-0.13).json()
    url = f"{URL}{created['id']}/"
    response = api.patch(url, {"address": "Dean Street"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["latitude"] == 51.5
    # clearing the coordinates would leave the store nowhere
    response = api.patch(url, {"latitude": None, "longitude": None}, format="json")
    assert response.status_code == 400
    assert "postal_prefixes" in response.json()["error"]["fields"]
    response = api.patch(url, {"latitude": 50}, format="json")
    assert response.status_code == 200  # longitude kept: still both
    response = api.patch(
        url, {"latitude": None, "longitude": None, "postal_prefixes": ["w1"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["postal_prefixes"] == ["W1"]
    assert response.json()["latitude"] is None
    response = api.patch(url, {"latitude": 95, "longitude": 0}, format="json")
    assert response.status_code == 400
    assert "latitude" in response.json()["error"]["fields"]


def test_delete(api, org):
    created = _create(api, name="Soho", latitude=51.5, longitude=-0.13).json()
    assert api.delete(f"{URL}{created['id']}/").status_code == 204
    assert api.get(f"{URL}{created['id']}/").status_code == 404
    with tenant_context(org):
        assert not Store.objects.exists()


def test_another_organisations_store_is_404(api, org, other_org):
    with tenant_context(other_org):
        theirs = Store.objects.create(
            organization=other_org, name="Rival shop", latitude=48.85, longitude=2.35
        )
    url = f"{URL}{theirs.pk}/"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "Mine now"}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    assert api.get(URL).json()["results"] == []
    with tenant_context(other_org):
        assert Store.objects.get(pk=theirs.pk).name == "Rival shop"


def test_a_read_key_cannot_change_stores(api_read, org):
    response = api_read.post(URL, {"name": "A", "latitude": 1, "longitude": 1}, format="json")
    assert response.status_code == 403


def test_unknown_list_parameters_answer_400(api):
    assert api.get(URL, {"near": "x"}).status_code == 400


def test_keys_of_two_organisations_see_their_own(org, other_org):
    clients = {}
    for organization in (org, other_org):
        _, raw = make_api_key(organization, "write")
        clients[organization.pk] = APIClient()
        clients[organization.pk].credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    _create(clients[org.pk], name="Ours", latitude=1, longitude=1)
    _create(clients[other_org.pk], name="Theirs", latitude=2, longitude=2)
    assert [s["name"] for s in clients[org.pk].get(URL).json()["results"]] == ["Ours"]
    assert [s["name"] for s in clients[other_org.pk].get(URL).json()["results"]] == ["Theirs"]
