"""Defects a new owner hit (issue 9), each shown to fail before its fix."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from core.models import Job
from customers.tests.factories import ImportFactory

# --- the import page shows one status ------------------------------------------------------


@pytest.fixture
def running_import(org):
    with tenant_context(org):
        job = Job.objects.create(organization=org, kind="import", title="Import orders.csv")
        imp = ImportFactory(organization=org, status="queued", job=job)
    return imp


def _polled_urls(html: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r'hx-get="([^"]+)"[^>]*hx-trigger="every', html)]


def test_import_page_updates_its_status_and_report_together(owner_client, org, running_import):
    page = owner_client.get(reverse("customers:import_detail", args=[running_import.pk]))
    html = page.content.decode()
    assert "Queued" in html
    polled = _polled_urls(html)
    assert polled, "an unfinished import's page polls for its progress"

    # The worker finishes: the import and its job both succeed.
    with tenant_context(org):
        running_import.job.status = "succeeded"
        running_import.job.progress = 100
        running_import.job.save()
        running_import.status = "succeeded"
        running_import.rows = 12
        running_import.created = 12
        running_import.save()

    # Whatever the page polls brings back the import's status and report, so the
    # page never shows "Succeeded" beside a stale "Queued".
    for url in polled:
        fragment = owner_client.get(url, headers={"HX-Request": "true"}).content.decode()
        assert "Succeeded" in fragment
        assert "Queued" not in fragment
        assert "Rows read" in fragment
        # finished: nothing polls any more
        assert not _polled_urls(fragment)


# --- an orders file's address fills the customer's profile ----------------------------------

ORDERS_WITH_ADDRESS = """\
Order,Customer,Date,SKU,Price,Billing City,Province,Billing Country,Zip
A1,C1,2024-01-05 10:00,S1,5.00,Leeds,West Yorkshire,United Kingdom,LS1 1AA
A3,C1,2024-03-05 10:00,S1,5.00,Paris,,France,75001
A2,C1,2024-02-05 10:00,S1,5.00,Lyon,Rhone,France,69001
B1,C2,2024-01-05 10:00,S1,5.00,,,,
"""


def test_auto_map_recognises_address_columns():
    from customers.services.imports.columns import auto_map

    mapping, _ = auto_map(
        "orders",
        ["InvoiceNo", "CustomerID", "InvoiceDate", "UnitPrice", "Country"],
    )
    assert mapping["Country"] == "country"
    mapping, _ = auto_map(
        "orders",
        [
            "Order",
            "Customer",
            "Date",
            "Price",
            "Billing City",
            "Shipping City",
            "State",
            "Postcode",
        ],
    )
    assert mapping["Billing City"] == "city"
    assert mapping["Shipping City"] == "Shipping City"  # the billing address won
    assert mapping["State"] == "region"
    assert mapping["Postcode"] == "postal_code"


def test_orders_file_fills_the_customers_address(in_org, tmp_path):
    from customers.models import Customer
    from customers.services.imports import run_file

    # C2 already has an address; a row without one keeps it.
    Customer.objects.create(external_id="C2", city="York", country="United Kingdom")
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_WITH_ADDRESS)
    out = run_file(organization=in_org, path=str(path), kind="orders")
    assert out.counts.rejected == 0

    c1 = Customer.objects.get(external_id="C1")
    # the latest order (A3, March) wins; its blank province keeps February's
    assert (c1.city, c1.region, c1.country, c1.postal_code) == (
        "Paris",
        "Rhone",
        "France",
        "75001",
    )
    c2 = Customer.objects.get(external_id="C2")
    assert (c2.city, c2.country) == ("York", "United Kingdom")
    # the columns are the customer's, not custom attributes of the orders
    from customers.models import Order

    assert "Billing Country" not in Order.objects.get(external_id="A1").properties


def test_bulk_orders_fill_the_customers_address(api, org):
    from customers.models import Customer

    records = [
        {
            "order_id": "X1",
            "customer_id": "P1",
            "ordered_at": "2024-05-01T10:00:00Z",
            "amount": "12.00",
            "country": "Germany",
            "city": "Berlin",
            "postal_code": "10115",
        }
    ]
    response = api.post("/api/v1/orders/bulk/", records, format="json")
    assert response.status_code == 200, response.content
    with tenant_context(org):
        person = Customer.objects.get(external_id="P1")
    assert (person.country, person.city, person.postal_code) == ("Germany", "Berlin", "10115")
