"""Query parameters a person or a script can forge: ids beyond any column, list
cursors of the wrong types, pages beyond the last (issue 8, item 14). Each answers
400 or 404 with the error shape in the API, and a usable page on the site."""

from __future__ import annotations

import base64
import json

import pytest

from customers.tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db

BIG = "95131234567890123456789"


def cursor(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/events/?customer={BIG}",
        f"/api/v1/orders/?customer={BIG}",
        f"/api/v1/predictions/customers/?customer={BIG}",
        "/api/v1/events/?customer=9223372036854775808",
        "/api/v1/orders/?customer=-1",
        "/api/v1/orders/?customer=1e5",
    ],
)
def test_id_filters_beyond_any_id_are_a_400_naming_the_parameter(api, url):
    response = api.get(url)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "customer" in error["fields"]
    assert "'customer' must be an id" in error["message"]


def test_the_largest_id_is_still_a_filter(api, in_org):
    response = api.get("/api/v1/orders/?customer=9223372036854775807")
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("page", ["99999", BIG, "0", "-1", "abc"])
def test_api_pages_beyond_the_list_are_a_404_with_the_error_shape(api, in_org, page):
    CustomerFactory()
    response = api.get(f"/api/v1/customers/?page={page}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "page" in error["message"]


@pytest.mark.parametrize("page", [BIG, "99999", "-3", "abc"])
def test_site_product_pages_beyond_the_list_show_the_last_page(owner_client, in_org, page):
    from customers.tests.factories import ProductFactory

    ProductFactory(name="Teapot")
    response = owner_client.get(f"/customers/products/?page={page}")
    assert response.status_code == 200
    assert b"Teapot" in response.content


FORGED = [
    [{"x": 1}, 1],
    ["", 1],  # a text value: valid for the name and id sorts, and before every name
    [1, 1e300],
    [[1], 1],
    [{"t": "2020-01-01T00:00:00+00:00"}, 10**30],
    [{"d": "abc"}, 1],
    [{"d": "NaN"}, 1],
    [{"t": "x"}, 1],
    [True, 1],
    [None, -5],
    "not a list",
]


@pytest.mark.parametrize("sort", ["recent", "spent", "orders", "name", "id", "newest"])
def test_forged_list_cursors_start_from_the_first_page(owner_client, in_org, sort):
    OrderFactory(customer=CustomerFactory(last_name="Zebedee"))
    for forged in FORGED:
        response = owner_client.get(f"/customers/?sort={sort}&after={cursor(forged)}")
        assert response.status_code == 200, forged
        assert b"Zebedee" in response.content, forged
    response = owner_client.get(f"/customers/?sort={sort}&after=%%%not-base64")
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_order_dates_beyond_any_utc_time_are_a_400(api, name, value):
    response = api.get("/api/v1/orders/", {name: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert name in error["fields"]
    assert "out of range" in error["message"]
