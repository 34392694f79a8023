"""Postage, fees and adjustments are not merchandise (issue 9): detected on the demo's
real stock codes, stored on products from every way in, and the owner's word wins."""

import csv
import gzip
from pathlib import Path

import pytest

from accounts.tenancy import tenant_context
from customers.merchandise import detect_merchandise, is_merchandise
from customers.models import MerchandiseSource, Product
from customers.services.imports import run_file

from .factories import ProductFactory

DEMO = Path(__file__).resolve().parents[1] / "demo_data" / "online_retail_sample.csv.gz"


def test_the_demo_files_non_merchandise_lines_are_found_and_nothing_else():
    with gzip.open(DEMO, "rt", encoding="utf-8") as fh:
        items = {(r["StockCode"], r["Description"]) for r in csv.DictReader(fh)}
    flagged = {sku for sku, name in items if not is_merchandise(sku=sku, name=name)}
    # POSTAGE, CARRIAGE, Discount, Manual, "Next Day Carriage", "PACKING CHARGE"
    assert flagged == {"POST", "C2", "D", "M", "23444", "23574"}
    # look-alikes that are goods: polka dots, postcards, a carriage lantern, a
    # money bank, a bank-account greeting card, gift bags and gift wrap
    for sku in ("20675", "21135", "23099", "22644", "21518", "22820", "22045", "21459"):
        name = next(n for s, n in items if s == sku)
        assert is_merchandise(sku=sku, name=name), name


@pytest.mark.parametrize(
    ("sku", "name", "category"),
    [
        ("POST", "POSTAGE", ""),
        ("DOT", "DOTCOM POSTAGE", ""),
        ("C2", "CARRIAGE", ""),
        ("BANK CHARGES", "Bank Charges", ""),
        ("AMAZONFEE", "AMAZON FEE", ""),
        ("CRUK", "CRUK Commission", ""),
        ("PADS", "PADS TO MATCH ALL CUSHIONS", ""),
        ("D", "Discount", ""),
        ("S", "SAMPLES", ""),
        ("B", "Adjust bad debt", ""),
        ("M", "Manual", ""),
        ("gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", ""),
        ("X1", "Shipping & handling", ""),
        ("X2", "Delivery charge", ""),
        ("X3", "Gift card £25", ""),
        ("X4", "Card payment fee", ""),
        ("X5", "Stock adjustment", ""),
        ("X6", "Standard UK delivery", ""),
        ("X7", "", "Gift cards"),
        ("X8", "Express", "Shipping"),
    ],
)
def test_charges_fees_adjustments_and_vouchers_are_not_merchandise(sku, name, category):
    found = detect_merchandise(sku=sku, name=name, category=category)
    assert not found.merchandise
    assert found.reason


@pytest.mark.parametrize(
    ("sku", "name", "category"),
    [
        ("M", "Medium T-shirt", "Clothing"),  # a one-letter code with a real name
        ("S", "Small mug", ""),
        ("22820", "GIFT BAG BIRTHDAY", "Gift"),
        ("L1", "French carriage lantern", "Garden"),
        ("P1", "Postcard set", "Stationery"),
        ("K1", "Coffee grinder", "Kitchen"),
    ],
)
def test_goods_with_look_alike_words_are_merchandise(sku, name, category):
    assert is_merchandise(sku=sku, name=name, category=category)


@pytest.mark.django_db
def test_orders_file_creates_postage_as_not_merchandise(in_org, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,product_name,quantity,unit_price\n"
        "1,c1,2024-01-02,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55\n"
        "1,c1,2024-01-02,POST,POSTAGE,1,18.00\n"
        "2,c2,2024-01-03,23574,PACKING CHARGE,1,2.00\n"
    )
    run_file(organization=in_org, path=str(path), kind="orders")
    flags = dict(Product.objects.values_list("sku", "merchandise"))
    assert flags == {"85123A": True, "POST": False, "23574": False}


@pytest.mark.django_db
def test_products_file_merchandise_and_hidden_columns_win_over_detection(in_org, tmp_path):
    path = tmp_path / "products.csv"
    path.write_text(
        "sku,name,merchandise,hidden\n"
        "POST,POSTAGE,,\n"
        "GIFT-1,Gift card,true,\n"  # the owner sells gift cards as goods
        "MUG,Mug,,yes\n"
        "TEA,Teapot,false,\n"
    )
    out = run_file(organization=in_org, path=str(path), kind="products")
    assert out.counts.rejected == 0, out.errors
    rows = {p.sku: p for p in Product.objects.all()}
    assert (rows["POST"].merchandise, rows["POST"].merchandise_source) == (False, "detected")
    assert (rows["GIFT-1"].merchandise, rows["GIFT-1"].merchandise_source) == (True, "owner")
    assert rows["TEA"].merchandise is False
    assert rows["MUG"].hidden is True and rows["MUG"].merchandise is True
    # a later file without the column leaves the owner's word and the flag as they are
    again = tmp_path / "again.csv"
    again.write_text("sku,name\nGIFT-1,Gift card £10\nMUG,Mug\n")
    run_file(organization=in_org, path=str(again), kind="products")
    assert Product.objects.get(sku="GIFT-1").merchandise is True
    assert Product.objects.get(sku="MUG").hidden is True


@pytest.mark.django_db
def test_api_reads_and_writes_merchandise_and_hidden(api, org):
    r = api.post("/api/v1/products/", {"sku": "POST", "name": "POSTAGE"}, format="json")
    assert r.status_code == 201
    body = r.json()
    assert (body["merchandise"], body["merchandise_source"], body["hidden"]) == (
        False,
        "detected",
        False,
    )
    pid = body["id"]
    # the owner says postage is a product here; renaming it does not undo that
    body = api.patch(f"/api/v1/products/{pid}/", {"merchandise": True}, format="json").json()
    assert (body["merchandise"], body["merchandise_source"]) == (True, "owner")
    body = api.patch(f"/api/v1/products/{pid}/", {"name": "Postage"}, format="json").json()
    assert body["merchandise"] is True
    # null hands it back to detection
    body = api.patch(f"/api/v1/products/{pid}/", {"merchandise": None}, format="json").json()
    assert (body["merchandise"], body["merchandise_source"]) == (False, "detected")
    body = api.patch(f"/api/v1/products/{pid}/", {"hidden": True}, format="json").json()
    assert body["hidden"] is True
    records = [{"sku": "C2", "name": "CARRIAGE"}, {"sku": "MUG", "name": "Mug", "hidden": True}]
    assert api.post("/api/v1/products/bulk/", records, format="json").json()["created"] == 2
    with tenant_context(org):
        assert Product.objects.get(sku="C2").merchandise is False
        assert Product.objects.get(sku="MUG").hidden is True


@pytest.mark.django_db
def test_product_page_shows_and_lets_the_owner_correct_the_flags(client, owner, org):
    with tenant_context(org):
        postage = ProductFactory(organization=org, sku="POST", name="POSTAGE", merchandise=False)
    client.force_login(owner)
    page = client.get(f"/customers/products/{postage.pk}/").content.decode()
    assert "Counts as merchandise" in page and "Hidden" in page
    r = client.post(
        f"/customers/products/{postage.pk}/flags/", {"merchandise": "on", "hidden": "on"}
    )
    assert r.status_code == 302
    with tenant_context(org):
        postage.refresh_from_db()
    assert (postage.merchandise, postage.hidden) == (True, True)
    assert postage.merchandise_source == MerchandiseSource.OWNER


@pytest.mark.django_db
def test_a_viewer_cannot_change_the_flags(client, viewer, org):
    with tenant_context(org):
        mug = ProductFactory(organization=org, sku="MUG", name="Mug")
    client.force_login(viewer)
    r = client.post(f"/customers/products/{mug.pk}/flags/", {"hidden": "on"})
    assert r.status_code == 403
    with tenant_context(org):
        mug.refresh_from_db()
    assert mug.hidden is False


@pytest.mark.django_db
def test_migration_marks_products_stored_before_the_field(org):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("customers.migrations.0005_product_merchandise_hidden")
    with tenant_context(org):
        # as the column's default left them: everything counted as merchandise
        ProductFactory(organization=org, sku="POST", name="POSTAGE", merchandise=True)
        ProductFactory(organization=org, sku="85123A", name="WHITE HANGING HEART")
    migration.detect(apps, None)
    with tenant_context(org):
        assert dict(Product.objects.values_list("sku", "merchandise")) == {
            "POST": False,
            "85123A": True,
        }


@pytest.mark.django_db
def test_products_can_be_listed_by_merchandise_and_hidden(api, owner_client, org):
    with tenant_context(org):
        ProductFactory(organization=org, sku="POST", name="POSTAGE", merchandise=False)
        ProductFactory(organization=org, sku="MUG", name="Mug", hidden=True)
        ProductFactory(organization=org, sku="TEA", name="Teapot")
    skus = [p["sku"] for p in api.get("/api/v1/products/?merchandise=false").json()["results"]]
    assert skus == ["POST"]
    skus = [p["sku"] for p in api.get("/api/v1/products/?hidden=true").json()["results"]]
    assert skus == ["MUG"]
    page = owner_client.get("/customers/products/?merchandise=false").content.decode()
    assert "POSTAGE" in page and "not merchandise" in page and "Teapot" not in page
