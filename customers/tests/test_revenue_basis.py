"""Issue 14, items 3 and 2: shop exports' shipping and taxes are read into the
order; the owner chooses whether revenue counts them (settings, dashboard); the
API's import takes exchange rates; segment and prediction spend never adds
another currency's amounts to the organisation's."""

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.history import History
from customers.models import Customer, Import, Order
from customers.selectors import dashboard_summary
from customers.services.imports import run_file

pytestmark = pytest.mark.django_db

SHOPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "shops"


def shop_file(tmp_path, name: str, changes: dict[int, dict[str, str]]) -> str:
    """A copy of a shop fixture with some cells changed: {row index: {column: value}}."""
    with open(SHOPS / name, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    for index, cells in changes.items():
        for column, value in cells.items():
            rows[index + 1][header.index(column)] = value
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def run(org, path, **options):
    return run_file(organization=org, path=path, kind="orders", **options)


def order(key):
    return Order.objects.get(external_id=key)


def amounts(key):
    o = order(key)
    return o.total, o.shipping_amount, o.tax_amount


def test_shopify_shipping_and_taxes_are_the_orders(in_org, tmp_path):
    # Shipping and Taxes are on an order's first row only
    path = shop_file(tmp_path, "shopify_orders.csv", {0: {"Taxes": "2.72"}})
    out = run(in_org, path)
    assert out.counts.rejected == 0, out.errors
    assert amounts("#1001") == (Decimal("30.00"), Decimal("4.00"), Decimal("2.72"))
    # a partial refund's own line does not carry the order's shipping twice
    assert amounts("#1007") == (Decimal("10.00"), Decimal(0), Decimal(0))
    # the same file again: unchanged
    assert run(in_org, path).counts.unchanged == 8


def test_etsy_order_shipping_written_on_each_item_row_counts_once(in_org, tmp_path):
    path = shop_file(
        tmp_path,
        "etsy_order_items.csv",
        {0: {"Order Sales Tax": "1.20"}, 1: {"Order Sales Tax": "1.20"}},
    )
    run(in_org, path)
    # two item rows, each saying the order's 4.00 shipping and 1.20 tax
    assert amounts("3001")[1:] == (Decimal("4.00"), Decimal("1.20"))


def test_etsy_sold_orders_shipping_is_net_of_its_discount(in_org, tmp_path):
    path = shop_file(
        tmp_path, "etsy_sold_orders.csv", {0: {"Shipping Discount": "1.00", "Sales Tax": "0.80"}}
    )
    run(in_org, path)
    assert amounts("3001")[1:] == (Decimal("3.00"), Decimal("0.80"))


def test_woocommerce_shipping_and_both_taxes_on_the_order(in_org, tmp_path):
    path = shop_file(
        tmp_path,
        "woocommerce_orders.csv",
        {0: {"tax_total": "3.00", "shipping_tax_total": "0.50"}},
    )
    run(in_org, path)
    # two line items: the order's shipping and tax once, not on each line
    assert order("2001").lines.count() == 2
    assert amounts("2001") == (Decimal("54.00"), Decimal("5.00"), Decimal("3.50"))


def test_square_item_taxes_add_up_per_transaction(in_org, tmp_path):
    path = shop_file(tmp_path, "square_items.csv", {0: {"Tax": "$0.50"}, 1: {"Tax": "$0.25"}})
    run(in_org, path)
    assert amounts("TX0001")[2] == Decimal("0.75")
    assert amounts("TX0001")[1] is None  # Square's item details have no shipping


def test_generic_file_shipping_and_tax_columns(in_org, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,amount,shipping_cost,taxes\n"
        "A1,c1,2026-03-01,S1,10.00,2.50,1.00\n"
        "A1,c1,2026-03-01,S2,5.00,,\n"
        "A2,c1,2026-03-02,S1,10.00,,\n"
    )
    out = run(in_org, str(path))
    assert out.counts.rejected == 0, out.errors
    assert amounts("A1") == (Decimal("15.00"), Decimal("2.50"), Decimal("1.00"))
    assert amounts("A2") == (Decimal("10.00"), None, None)  # not given


def test_a_rate_converts_shipping_and_taxes_too(in_org, tmp_path):
    path = shop_file(tmp_path, "shopify_orders.csv", {5: {"Shipping": "100.00", "Taxes": "20"}})
    run(in_org, path, rates={"ZAR": "0.05"})
    o = order("#1005")
    assert (o.currency, o.shipping_amount, o.tax_amount) == ("USD", Decimal("5"), Decimal("1"))


@pytest.mark.parametrize(
    "basis,revenue,words",
    [
        ("goods", "40.00", "without shipping and taxes"),
        ("goods_shipping", "44.00", "with shipping, without taxes"),
        ("goods_shipping_taxes", "46.72", "with shipping and taxes"),
    ],
)
def test_dashboard_revenue_counts_what_the_owner_chose(in_org, tmp_path, basis, revenue, words):
    path = shop_file(tmp_path, "shopify_orders.csv", {0: {"Taxes": "2.72"}})
    run(in_org, path)
    in_org.revenue_basis = basis
    in_org.save(update_fields=["revenue_basis"])
    summary = dashboard_summary(organization=in_org)
    assert summary["revenue"] == Decimal(revenue)
    assert words in summary["revenue_label"]
    # the chart adds up to the same figure
    assert sum(Decimal(str(r)) for r in summary["chart"]["revenue"]) == Decimal(revenue)


def test_settings_page_sets_what_revenue_counts_and_the_dashboard_says_so(
    owner_client, org, tmp_path
):
    path = shop_file(tmp_path, "woocommerce_orders.csv", {})
    with tenant_context(org):
        run(org, path)
    page = owner_client.get(reverse("accounts:settings")).content.decode()
    assert 'value="goods" aria-describedby="revenue-help" checked' in page
    r = owner_client.post(
        reverse("accounts:settings"),
        {
            "name": org.name,
            "time_zone": org.time_zone,
            "currency": org.currency,
            "revenue_basis": "goods_shipping",
        },
    )
    assert r.status_code == 302
    org.refresh_from_db()
    assert org.revenue_basis == "goods_shipping"
    page = owner_client.get(reverse("core:dashboard")).content.decode()
    assert "with shipping, without taxes" in page
    # 2001 and 2002 paid in USD: 84.00 of goods and 2 × 5.00 shipping
    assert ">94<" in page
    # an unknown choice is refused, the setting kept
    owner_client.post(reverse("accounts:settings"), {"revenue_basis": "everything"})
    org.refresh_from_db()
    assert org.revenue_basis == "goods_shipping"


def test_segment_and_prediction_spend_leaves_other_currencies_out(in_org):
    run(in_org, str(SHOPS / "shopify_orders.csv"))
    history = History(in_org, dt.date(2026, 12, 31))
    thandi = Customer.objects.get(external_id="+27825550102")  # two paid orders in rand
    ada = Customer.objects.get(email="ada.lane@example.com")  # dollars
    lines = history.order_lines()
    theirs = lines[lines["customer_id"] == thandi.pk]
    assert len(theirs) == 2 and (theirs["amount"] == 0).all()  # bought, but no dollars
    assert lines[lines["customer_id"] == ada.pk]["amount"].sum() == pytest.approx(40.0)
    purchases = history.purchases()
    theirs = purchases.amounts[purchases.customer_ids == thandi.pk]
    assert len(theirs) == 2 and (theirs == 0).all()
    assert purchases.amounts[purchases.customer_ids == ada.pk].sum() == pytest.approx(40.0)


def test_api_import_takes_exchange_rates(api, org, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("s.csv", (SHOPS / "shopify_orders.csv").read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(
            "/api/v1/imports/",
            {"file": upload, "kind": "orders", "rates": '{"ZAR": "0.055"}'},
            format="multipart",
        )
    assert r.status_code == 202, r.json()
    with tenant_context(org):
        imp = Import.objects.get(pk=r.json()["import"])
        assert imp.options["rates"] == {"ZAR": "0.055"}
        assert order("#1005").currency == "USD"  # converted: 240 ZAR
        assert order("#1005").total == Decimal("13.2")
    # the wizard's and --rate's form works too; a malformed rate is refused
    upload = SimpleUploadedFile("s.csv", (SHOPS / "shopify_orders.csv").read_bytes())
    r = api.post(
        "/api/v1/imports/",
        {"file": upload, "kind": "orders", "rates": "ZAR=0.06, EUR=1.08"},
        format="multipart",
    )
    assert r.status_code == 202, r.json()
    with tenant_context(org):
        assert Import.objects.get(pk=r.json()["import"]).options["rates"] == {
            "ZAR": "0.06",
            "EUR": "1.08",
        }
    upload = SimpleUploadedFile("s.csv", (SHOPS / "shopify_orders.csv").read_bytes())
    r = api.post(
        "/api/v1/imports/", {"file": upload, "kind": "orders", "rates": "ZAR"}, format="multipart"
    )
    assert r.status_code == 400
    assert "rates" in r.json()["error"]["fields"]


def test_an_order_sent_in_parts_keeps_its_shipping(in_org, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(
        "order_id,line_id,customer_id,ordered_at,sku,amount,shipping_amount,tax_amount\n"
        "A1,1,c1,2026-03-01,S1,10.00,3.00,0.50\n"
    )
    second.write_text(
        "order_id,line_id,customer_id,ordered_at,sku,amount\nA1,2,c1,2026-03-01,S2,5\n"
    )
    run(in_org, str(first))
    run(in_org, str(second))
    # the second part names only its line: the order's charges stay as the first gave them
    assert amounts("A1") == (Decimal("15.00"), Decimal("3.00"), Decimal("0.50"))
