"""Values that pass a row's own checks but cannot be stored, or break the
organisation once stored: overflowing amounts and totals, dates outside what the
columns hold, far-future dates, database errors for one row of a chunk — and
orders a person corrects or deletes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import DataError
from django.utils import timezone

from accounts.tenancy import tenant_context
from customers.models import Customer, Import, Order, OrderLine
from customers.selectors import latest_data_date
from customers.services.importing import import_from_path
from customers.services.imports import db as bulk_db

from .factories import CustomerFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

HUGE_QTY, HUGE_PRICE = 2_000_000_000, "99999999999999"


def _line(order_id, customer="c1", when="2024-05-01T10:00:00Z", **extra):
    return {"order_id": order_id, "customer_id": customer, "ordered_at": when, **extra}


def _bulk(api, kind, records, query=""):
    r = api.post(f"/api/v1/{kind}/bulk/{query}", records, format="json")
    assert r.status_code == 200, r.content[:500]
    return r.json()


def _pages_work(api):
    """What the hostile test saw break after such a row was stored."""
    for url in ("/api/v1/customers/", "/api/v1/orders/"):
        assert api.get(url).status_code == 200, url


# --- item 1: amounts and totals -----------------------------------------------------------


def test_a_line_amount_that_overflows_is_rejected_and_the_rest_of_the_call_stored(api, org):
    body = _bulk(
        api,
        "orders",
        [
            _line("G1", amount="25.00"),
            _line("H1", quantity=HUGE_QTY, unit_price=HUGE_PRICE),
            _line("G2", customer="c2", amount="5"),
        ],
    )
    assert (body["created"], body["rejected"]) == (2, 1)
    [error] = body["errors"]
    assert error["index"] == 1 and error["field"] == "amount"
    assert "too large" in error["message"]
    with tenant_context(org):
        assert sorted(Order.objects.values_list("external_id", flat=True)) == ["G1", "G2"]
        assert Customer.objects.get(external_id="c1").total_spent == Decimal("25")
    _pages_work(api)


def test_an_order_total_that_overflows_rejects_the_whole_order(api, org):
    big = "60000000000000"  # each line fits; their sum does not
    body = _bulk(
        api, "orders", [_line("T1", amount=big, sku="A"), _line("T1", amount=big, sku="B")]
    )
    assert (body["created"], body["rejected"]) == (0, 2)
    assert {e["index"] for e in body["errors"]} == {0, 1}
    assert all("order total" in e["message"] for e in body["errors"])
    with tenant_context(org):
        assert not Order.objects.exists()
    _pages_work(api)


def test_a_customer_total_that_would_overflow_rejects_the_order_that_tips_it(api, org):
    big = "90000000000000"
    assert _bulk(api, "orders", [_line("P1", amount=big)])["created"] == 1
    body = _bulk(api, "orders", [_line("P2", amount=big), _line("P3", customer="c2", amount=big)])
    assert (body["created"], body["rejected"]) == (1, 1)
    [error] = body["errors"]
    assert error["index"] == 0 and "customer c1" in error["message"]
    with tenant_context(org):
        assert Customer.objects.get(external_id="c1").total_spent == Decimal(big)
        assert sorted(Order.objects.values_list("external_id", flat=True)) == ["P1", "P3"]
    _pages_work(api)


# --- item 1 and 13: dates -------------------------------------------------------------------


def test_dates_outside_what_can_be_stored_are_rejected_per_row(api, org):
    body = _bulk(
        api,
        "customers",
        [
            {"customer_id": "a", "signup_at": "0001-01-01T00:00:00+14:00"},
            {"customer_id": "b", "signup_at": "9999-12-31T23:59:59-12:00"},
            {"customer_id": "c", "signup_at": "1899-12-31T12:00:00Z"},
            {"customer_id": "d", "signup_at": "2020-02-03T04:05:06Z"},
        ],
    )
    assert (body["created"], body["rejected"]) == (1, 3)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (0, "signup_at"),
        (1, "signup_at"),
        (2, "signup_at"),
    ]
    assert "1900-01-01" in body["errors"][2]["message"]
    body = _bulk(
        api,
        "orders",
        [
            _line("D1", when="0001-01-01T00:00:00+14:00", amount=1),
            _line("D2", when="9999-12-31T23:59:59-12:00", amount=1),
            _line("D3", amount=1),
        ],
    )
    assert (body["created"], body["rejected"]) == (1, 2)
    _pages_work(api)


def test_far_future_timestamps_are_rejected_with_the_reason(api, org):
    soon = (timezone.now() + dt.timedelta(hours=12)).isoformat()
    body = _bulk(
        api,
        "orders",
        [_line("F1", when="7453-07-15T10:00:00Z", amount=1), _line("F2", when=soon, amount=1)],
    )
    assert (body["created"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["field"] == "ordered_at"
    assert "7453-07-15 is in the future" in body["errors"][0]["message"]
    events = [
        {"customer_id": "c1", "type": "visit", "occurred_at": "7453-07-15T10:00:00Z"},
        {"customer_id": "c1", "type": "visit", "occurred_at": "2024-01-01T10:00:00Z"},
    ]
    body = _bulk(api, "events", events)
    assert (body["created"], body["rejected"]) == (1, 1)
    assert "7453-07-15 is in the future" in body["errors"][0]["message"]
    with tenant_context(org):
        assert latest_data_date().year == timezone.now().year


def test_latest_data_date_ignores_future_data_already_stored(in_org):
    real = timezone.now() - dt.timedelta(days=30)
    OrderFactory(ordered_at=real)
    OrderFactory(ordered_at=dt.datetime(7453, 7, 15, tzinfo=dt.UTC))
    assert latest_data_date() == real


# --- item 15: one bad row does not fail the import -----------------------------------------


def _write(tmp_path, text, name="orders.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_file_with_hostile_rows_stores_the_rest_and_counts_what_was_stored(in_org, tmp_path):
    path = _write(
        tmp_path,
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        "O1,C1,2024-05-01 10:00,S1,2,3.50\n"
        f"O2,C1,2024-05-02 10:00,S1,{HUGE_QTY},{HUGE_PRICE}\n"
        "O3,C2,7453-07-15 10:00,S1,1,3.50\n"
        "O4,C2,0001-01-01T00:00:00+14:00,S1,1,3.50\n"
        "O5,C3,2024-05-04 10:00,S2,1,2.00\n",
    )
    imp, _ = import_from_path(organization=in_org, path=path, kind="orders", run_pipeline=False)
    assert imp.status == "succeeded"
    assert (imp.rows, imp.created, imp.rejected) == (5, 2, 3)
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["O1", "O5"]
    assert [(e["row"], e["field"]) for e in imp.errors] == [
        (2, "amount"),
        (3, "ordered_at"),
        (4, "ordered_at"),
    ]


def test_a_database_error_for_one_order_rejects_only_that_order(in_org, tmp_path, monkeypatch):
    """Whatever the checks miss and the database refuses is rejected order by order."""
    real_insert = bulk_db.BulkDb.insert

    def refusing_insert(self, table, columns, rows):
        if table == "customers_orderline" and any("BOOM" in row for row in rows):
            raise DataError("value refused")
        return real_insert(self, table, columns, rows)

    monkeypatch.setattr(bulk_db.BulkDb, "insert", refusing_insert)
    path = _write(
        tmp_path,
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        "O1,C1,2024-05-01 10:00,S1,2,3.50\n"
        "O2,C2,2024-05-02 10:00,BOOM,1,3.50\n"
        "O2,C2,2024-05-02 10:00,S1,1,3.50\n"
        "O3,C3,2024-05-03 10:00,S1,1,2.00\n",
    )
    imp, _ = import_from_path(organization=in_org, path=path, kind="orders", run_pipeline=False)
    assert imp.status == "succeeded"
    assert (imp.rows, imp.created, imp.rejected) == (4, 2, 2)
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["O1", "O3"]
    assert {e["row"] for e in imp.errors} == {2, 3}
    assert all("could not be stored" in e["message"] for e in imp.errors)
    assert Customer.objects.get(external_id="C1").orders_count == 1
    # The report matches the database: every order created is there with its lines.
    assert OrderLine.objects.count() == 2
    assert Import.objects.get(pk=imp.pk).created == Order.objects.count()


# --- item 1: correcting and deleting orders -------------------------------------------------


@pytest.fixture
def bought(api, org):
    _bulk(
        api,
        "orders",
        [
            _line("A1", when="2024-05-01T10:00:00Z", sku="S1", quantity=2, unit_price="2.50"),
            _line("A2", when="2024-06-01T10:00:00Z", sku="S2", amount="10"),
        ],
    )
    with tenant_context(org):
        return {o.external_id: o.pk for o in Order.objects.all()}


def _stats(org, external_id="c1"):
    with tenant_context(org):
        c = Customer.objects.get(external_id=external_id)
        return c.orders_count, c.total_spent, c.first_order_at, c.last_order_at


def test_an_order_is_read_corrected_and_deleted_through_the_api(api, org, bought):
    r = api.get(f"/api/v1/orders/{bought['A2']}/")
    assert r.status_code == 200 and r.json()["external_id"] == "A2"

    r = api.patch(
        f"/api/v1/orders/{bought['A2']}/",
        {
            "ordered_at": "2024-06-02T10:00:00Z",
            "channel": "shop",
            "lines": [{"sku": "S2", "quantity": 3, "unit_price": "4"}],
        },
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["total"] == "12.0000" and r.json()["channel"] == "shop"
    count, spent, _, last = _stats(org)
    assert (count, spent) == (2, Decimal("17")) and last.date() == dt.date(2024, 6, 2)

    r = api.patch(
        f"/api/v1/orders/{bought['A2']}/",
        {"lines": [{"sku": "S2", "quantity": HUGE_QTY, "unit_price": HUGE_PRICE}]},
        format="json",
    )
    assert r.status_code == 400 and "too large" in str(r.json()["error"])
    r = api.patch(
        f"/api/v1/orders/{bought['A2']}/", {"lines": [{"sku": "S2", "quantity": 2}]}, format="json"
    )
    assert r.status_code == 400 and "give unit_price or amount" in str(r.json()["error"])
    r = api.patch(
        f"/api/v1/orders/{bought['A2']}/", {"ordered_at": "7453-07-15T00:00:00Z"}, format="json"
    )
    assert r.status_code == 400 and "in the future" in str(r.json()["error"])

    assert api.delete(f"/api/v1/orders/{bought['A2']}/").status_code == 204
    assert api.get(f"/api/v1/orders/{bought['A2']}/").status_code == 404
    count, spent, first, last = _stats(org)
    assert (count, spent) == (1, Decimal("5")) and first == last
    assert last.date() == dt.date(2024, 5, 1)
    _pages_work(api)


def test_a_read_key_cannot_change_or_delete_orders(api_read, bought):
    assert api_read.patch(f"/api/v1/orders/{bought['A1']}/", {}, format="json").status_code == 403
    assert api_read.delete(f"/api/v1/orders/{bought['A1']}/").status_code == 403


def test_a_deleted_order_is_not_recreated_by_a_reimport_unless_asked(api, org, bought):
    records = [_line("A2", when="2024-06-01T10:00:00Z", sku="S2", amount="10")]
    assert api.delete(f"/api/v1/orders/{bought['A2']}/").status_code == 204
    body = _bulk(api, "orders", records)
    assert (body["created"], body["rejected"]) == (0, 1)
    assert "deleted" in body["errors"][0]["message"]
    assert "allow_deleted" in body["errors"][0]["message"]
    with tenant_context(org):
        assert not Order.objects.filter(external_id="A2").exists()
    body = _bulk(api, "orders", records, query="?allow_deleted=true")
    assert body["created"] == 1
    # Brought back, it is an ordinary order again.
    assert _bulk(api, "orders", records)["unchanged"] == 1


def test_a_deleted_order_is_skipped_by_a_file_reimport_until_allowed(in_org, tmp_path):
    path = _write(
        tmp_path,
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        "O1,C1,2024-05-01 10:00,S1,2,3.50\n"
        "O2,C1,2024-05-02 10:00,S1,1,3.50\n",
    )
    import_from_path(organization=in_org, path=path, kind="orders", run_pipeline=False)
    from customers.services.orders import order_delete

    order_delete(order_id=Order.objects.get(external_id="O2").pk, actor=None)
    imp, _ = import_from_path(organization=in_org, path=path, kind="orders", run_pipeline=False)
    assert (imp.unchanged, imp.rejected) == (1, 1)
    assert imp.errors[0]["row"] == 2 and "deleted" in imp.errors[0]["message"]
    imp, _ = import_from_path(
        organization=in_org,
        path=path,
        kind="orders",
        run_pipeline=False,
        options={"allow_deleted": True},
    )
    assert (imp.unchanged, imp.created) == (1, 1)
    assert Customer.objects.get(external_id="C1").orders_count == 2


def test_orders_of_a_customer_can_be_edited_and_deleted_on_the_site(owner_client, org):
    with tenant_context(org):
        line = OrderLineFactory(order__customer=CustomerFactory(external_id="k1"))
        order = line.order
        Customer.objects.filter(pk=order.customer_id).update(
            orders_count=1, total_spent=order.total, last_order_at=order.ordered_at
        )
    page = owner_client.get(f"/customers/{order.customer_id}/").content.decode()
    assert f"/customers/orders/{order.pk}/" in page
    page = owner_client.get(f"/customers/orders/{order.pk}/").content.decode()
    assert f"/customers/orders/{order.pk}/edit/" in page
    assert f"/customers/orders/{order.pk}/delete/" in page

    r = owner_client.get(f"/customers/orders/{order.pk}/edit/")
    assert r.status_code == 200
    form = {
        "ordered_at": "2024-01-02 03:04",
        "currency": "EUR",
        "channel": "",
        "location": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "1",
        "lines-0-sku": line.sku,
        "lines-0-product_name": line.product_name,
        "lines-0-category": "",
        "lines-0-quantity": "4",
        "lines-0-unit_price": "2.50",
    }
    r = owner_client.post(f"/customers/orders/{order.pk}/edit/", form)
    assert r.status_code == 302, r.content.decode()[:3000]
    with tenant_context(org):
        order.refresh_from_db()
        assert order.total == Decimal("10") and order.currency == "EUR"
        # recomputed: a purchase, its euros not added to the organisation's currency
        customer = Customer.objects.get(pk=order.customer_id)
        assert org.currency != "EUR" and customer.orders_count == 1
        assert customer.total_spent == Decimal("0")

    r = owner_client.post(
        f"/customers/orders/{order.pk}/edit/", {**form, "ordered_at": "7453-07-15 10:00"}
    )
    assert r.status_code == 200 and "in the future" in r.content.decode()

    page = owner_client.get(f"/customers/orders/{order.pk}/delete/").content.decode()
    assert "re-import" in page
    r = owner_client.post(f"/customers/orders/{order.pk}/delete/")
    assert r.status_code == 302
    with tenant_context(org):
        assert not Order.objects.filter(pk=order.pk).exists()
        customer = Customer.objects.get(external_id="k1")
        assert (customer.orders_count, customer.total_spent) == (0, 0)


def test_a_viewer_cannot_delete_orders_on_the_site(client, viewer, org):
    with tenant_context(org):
        order = OrderLineFactory().order
    client.force_login(viewer)
    assert client.post(f"/customers/orders/{order.pk}/delete/").status_code == 403
    with tenant_context(org):
        assert Order.objects.filter(pk=order.pk).exists()


def test_customer_patch_refuses_dates_outside_what_can_be_stored(api, org):
    _bulk(api, "customers", [{"customer_id": "p1"}])
    with tenant_context(org):
        pk = Customer.objects.get(external_id="p1").pk
    for value in ("0001-01-01T00:00:00+14:00", "7453-07-15T00:00:00Z"):
        r = api.patch(f"/api/v1/customers/{pk}/", {"signup_at": value}, format="json")
        assert r.status_code == 400, (value, r.content)
    r = api.patch(f"/api/v1/customers/{pk}/", {"birth_date": "7453-07-15"}, format="json")
    assert r.status_code == 400 and "in the future" in str(r.json()["error"])
    assert api.get("/api/v1/customers/").status_code == 200


def test_a_rating_too_large_for_a_number_is_rejected(api, org, in_org, tmp_path):
    path = _write(
        tmp_path,
        "feedback_id,customer_id,created_at,rating,text\n"
        "f1,c1,2024-01-01,1e400,too big\n"
        "f2,c1,2024-01-02,4,fine\n",
        name="feedback.csv",
    )
    imp, _ = import_from_path(organization=in_org, path=path, kind="feedback", run_pipeline=False)
    assert (imp.created, imp.rejected) == (1, 1)
    assert imp.errors[0]["field"] == "rating"


def test_a_value_the_database_refuses_loses_only_its_own_record(api, org):
    """PostgreSQL refuses a NUL character in text (SQLite stores it): the record is
    refused before the database on either, naming the field, and the bulk call
    answers 200 and keeps every other record."""
    records = [
        {"customer_id": "n1", "first_name": "Ada"},
        {"customer_id": "n2", "first_name": "Nul\x00Byte"},
        {"customer_id": "n3", "first_name": "Cy"},
    ]
    body = _bulk(api, "customers", records)
    with tenant_context(org):
        stored = set(Customer.objects.values_list("external_id", flat=True))
    assert (body["created"], body["rejected"]) == (2, 1)
    [error] = body["errors"]
    assert (error["index"], error["field"]) == (1, "first_name")
    assert "NUL character" in error["message"]
    assert stored == {"n1", "n3"}
    _pages_work(api)


def test_a_corrected_or_deleted_order_asks_for_fresh_results(
    api, bought, monkeypatch, django_capture_on_commit_callbacks
):
    import segmentation.pipeline

    asked = []
    monkeypatch.setattr(
        segmentation.pipeline, "pipeline_after_data_change", lambda **kw: asked.append(kw)
    )
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/v1/orders/{bought['A1']}/", {"channel": "web"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/api/v1/orders/{bought['A2']}/")
    assert len(asked) == 2


def test_an_order_stored_before_these_checks_with_unreadable_values_can_be_deleted(
    api, org, bought
):
    """Rows written before the checks (an overflowing total on SQLite, a BC timestamp
    on PostgreSQL) break every page that reads them; deleting the order repairs it."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE customers_order SET ordered_at = '0001-01-01 00:00:00+00 BC' WHERE id = %s",
                [bought["A2"]],
            )
        else:
            cursor.execute("UPDATE customers_order SET total = 2e23 WHERE id = %s", [bought["A2"]])
    assert api.delete(f"/api/v1/orders/{bought['A2']}/").status_code == 204
    _pages_work(api)
    count, spent, _, _ = _stats(org)
    assert (count, spent) == (1, Decimal("5"))


def test_values_stored_before_these_checks_are_repaired(api, org, bought):
    """What migration 0004 runs for every organisation: unreadable rows go, the
    customers' figures are recomputed, the pages work again."""
    from django.db import connection

    from customers.services.repair import unreadable_values_repair

    _bulk(api, "events", [{"customer_id": "c1", "type": "visit", "occurred_at": "2024-01-01"}])
    with tenant_context(org):
        c1 = Customer.objects.get(external_id="c1").pk
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            bad = "0001-01-01 00:00:00+00 BC"
            for sql, pk in (
                ("UPDATE customers_order SET ordered_at = %s WHERE id = %s", bought["A2"]),
                ("UPDATE customers_event SET occurred_at = %s WHERE id > %s", 0),
                ("UPDATE customers_customer SET signup_at = %s WHERE id = %s", c1),
            ):
                cursor.execute(sql, [bad, pk])
        else:
            line = "UPDATE customers_orderline SET amount = 2e23 WHERE order_id = %s"
            cursor.execute(line, [bought["A2"]])
            cursor.execute("UPDATE customers_customer SET total_spent = 2e23 WHERE id = %s", [c1])
    with tenant_context(org):
        done = unreadable_values_repair(organization_id=org.pk)
        assert done["orders"] == 1
        assert not Order.objects.filter(pk=bought["A2"]).exists()
        assert Order.objects.filter(pk=bought["A1"]).exists()
        if connection.vendor == "postgresql":
            assert done["events"] == 1 and done["signups"] == 1
        assert unreadable_values_repair(organization_id=org.pk)["orders"] == 0
    _pages_work(api)
    assert api.get(f"/api/v1/customers/{c1}/").status_code == 200
    count, spent, _, _ = _stats(org)
    assert (count, spent) == (1, Decimal("5"))


@pytest.mark.parametrize(
    ("path", "record"),
    [
        ("customers", {"customer_id": "S1", "first_name": "a\ud800b"}),
        ("products", {"sku": "S-1", "name": "x", "colour": ["\udfff"]}),
        ("orders", {"order_id": "O1", "customer_id": "S1", "ordered_at": "2026-01-01",
                    "sku": "S-1", "amount": 5, "note": "\ud800"}),
        ("events", {"customer_id": "S1", "occurred_at": "2026-01-01", "type": "vi\ud800ew"}),
    ],
)  # fmt: skip
def test_a_lone_surrogate_in_any_bulk_record_is_400_naming_it_and_nothing_is_stored(
    api, org, path, record
):
    """JSON may carry "\\ud800", which no UTF-8 text (nor the database) can hold."""
    from customers.models import Customer, Event, Order, Product

    body = json.dumps([{"customer_id": "S0", "email": "ok@example.com"}, record])
    if path != "customers":
        body = json.dumps([record])
    response = api.post(f"/api/v1/{path}/bulk/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "lone surrogate" in response.json()["error"]["message"]
    with tenant_context(org):
        for model in (Customer, Event, Order, Product):
            assert not model.objects.exists()
