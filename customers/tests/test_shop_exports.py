"""Shop systems' own exports (invented rows in each platform's exact columns, see
tests/data/shops/README.md) import with no column map: the right layout, revenue
from paid orders only and net of discounts, statuses, customers, times."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from customers.models import Customer, Order, Product
from customers.selectors import dashboard_summary
from customers.services.imports import run_file

pytestmark = pytest.mark.django_db

SHOPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "shops"
UTC = dt.UTC


@pytest.fixture
def shop(in_org):
    """An organisation in New York: a file's times without a zone are read there."""
    in_org.time_zone = "America/New_York"
    in_org.save(update_fields=["time_zone"])
    return in_org


def run(org, name, kind="orders", path=None, **options):
    return run_file(organization=org, path=str(path or SHOPS / name), kind=kind, **options)


def counts(outcome):
    c = outcome.counts
    return c.rows, c.created, c.updated, c.unchanged, c.rejected


def order(key):
    return Order.objects.get(external_id=key)


def paid_revenue(currency=None):
    orders = Order.objects.filter(status="paid")
    if currency:
        orders = orders.filter(currency=currency)
    return sum((o.total for o in orders), Decimal(0))


@pytest.mark.parametrize(
    "name,kind,layout,label,rows",
    [
        ("shopify_orders.csv", "orders", "shopify_orders", "Shopify orders", 8),
        ("shopify_customers.csv", "customers", "shopify_customers", "Shopify customers", 3),
        ("shopify_customers_old.csv", "customers", "shopify_customers", "Shopify customers", 2),
        ("shopify_products.csv", "products", "shopify_products", "Shopify products", 4),
        ("etsy_order_items.csv", "orders", "etsy_order_items", "Etsy order items", 4),
        ("etsy_sold_orders.csv", "orders", "etsy_sold_orders", "Etsy sold orders", 4),
        ("stripe_payments.csv", "orders", "stripe_payments", "Stripe payments", 7),
        ("woocommerce_products.csv", "products", "woocommerce_products", "WooCommerce products", 4),
        ("woocommerce_orders.csv", "orders", "woocommerce_orders", "WooCommerce orders", 6),
        ("square_items.csv", "orders", "square_items", "Square item details", 5),
        ("square_transactions.csv", "orders", "square_transactions", "Square transactions", 3),
        (
            "woocommerce_analytics_orders.csv",
            "orders",
            "woocommerce_analytics_orders",
            "WooCommerce Analytics orders",
            4,
        ),
        ("etsy_sold_orders_old.csv", "orders", "etsy_sold_orders", "Etsy sold orders", 1),
    ],
)
def test_each_shop_export_imports_with_no_map(shop, name, kind, layout, label, rows):
    out = run(shop, name, kind)
    assert out.detected["format"] == layout
    assert out.detected["format_name"] == label  # a person's words, not "Shopifyorders"
    assert counts(out) == (rows, rows, 0, 0, 0), out.errors
    # importing the same file again changes nothing
    again = run(shop, name, kind)
    assert counts(again) == (rows, 0, 0, rows, 0)


def test_shopify_orders_revenue_is_paid_orders_net_of_discounts(shop):
    out = run(shop, "shopify_orders.csv")
    # the file mixes rand and dollars: the report says so
    assert out.detected["other_currencies"] == ["ZAR"]
    assert order("#1001").total == Decimal("30.00")  # 2 × 10 + 15, less SAVE5's 5.00
    first = order("#1001").lines.order_by("position").first()
    assert (first.discount_code, first.discount_amount) == ("SAVE5", Decimal("5.00"))
    assert order("#1002").status == "pending"  # cash on delivery, not paid yet
    assert order("#1003").status == "cancelled"  # voided
    assert order("#1004").status == "cancelled"  # refunded, then cancelled
    assert order("#1007").status == "paid"  # partially refunded: the order stands...
    # ...less its Refunded Amount (5.00 of 15.00), a line of its own
    assert order("#1007").total == Decimal("10.00")
    refund = order("#1007").lines.get(product_name="Partial refund")
    assert (refund.quantity, refund.amount, refund.product_id) == (-1, Decimal("-5.00"), None)
    assert paid_revenue("USD") == Decimal("40.00")
    assert paid_revenue("ZAR") == Decimal("690.00")
    # The buyer whose only order was voided has bought nothing.
    bob = Customer.objects.get(email="bob.rowe@example.com")
    assert (bob.orders_count, bob.total_spent) == (0, Decimal(0))
    ada = Customer.objects.get(email="ada.lane@example.com")
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("40.00"))
    # Shopify's leading apostrophe is not part of a phone or a zip.
    assert ada.phone == "+1 413 555 0100" and ada.postal_code == "01101"
    # her latest order's Accepts Marketing, stated when she ordered (consent rules)
    assert ada.accepts_email is True
    assert ada.email_consent_at == dt.datetime(2026, 3, 8, 21, 45, tzinfo=UTC)
    assert ada.consent_changes.get().via == "import"
    assert bob.accepts_email is False and not bob.consent_changes.exists()
    summary = dashboard_summary(organization=shop)
    assert summary["orders_count"] == 4
    # revenue in the organisation's currency; rand apart, never added to it
    assert summary["revenue"] == Decimal("40.00")
    assert summary["other_currencies"] == [{"currency": "ZAR", "revenue": Decimal("690.00")}]
    assert summary["pending_count"] == 0  # the pending order is in rand


def test_pending_orders_are_shown_apart_on_the_dashboard(shop):
    run(shop, "woocommerce_orders.csv")
    summary = dashboard_summary(organization=shop)
    assert summary["revenue"] == Decimal("84.00")  # 2001 and 2002; 2006 is in CAD
    assert (summary["pending_count"], summary["pending_revenue"]) == (1, Decimal("45.00"))
    assert summary["other_currencies"] == [{"currency": "CAD", "revenue": Decimal("20.00")}]


def test_shopify_buyers_without_email_are_customers_by_phone(shop):
    run(shop, "shopify_orders.csv")
    thandi = Customer.objects.get(external_id="+27825550102")
    assert thandi.orders.count() == 2  # the same phone on two orders
    # two purchases in rand: never added to the organisation's dollars
    assert (thandi.orders_count, thandi.total_spent) == (2, Decimal(0))
    assert thandi.city == "Cape Town"
    # the order's Billing Name fills the profile: a buyer one can address
    assert (thandi.first_name, thandi.last_name) == ("Thandi", "Nkosi")
    sipho = Customer.objects.get(external_id="+27825550101")
    assert (sipho.orders_count, sipho.phone) == (0, "+27 82 555 0101")  # pending only
    assert Order.objects.filter(customer__isnull=True).count() == 0


def test_shopify_customers_then_orders_find_the_customer_by_id_email_and_phone(shop):
    out = run(shop, "shopify_customers.csv", kind="customers")
    assert counts(out) == (3, 3, 0, 0, 0)
    ada = Customer.objects.get(external_id="8800000000101")  # no apostrophe
    assert ada.phone == "+14135550100"  # Phone, before Default Address Phone
    assert ada.accepts_email is True and ada.accepts_sms is False
    run(shop, "shopify_orders.csv")
    assert order("#1001").customer == ada  # by email
    thandi = Customer.objects.get(external_id="8800000000103")
    assert {o.external_id for o in thandi.orders.all()} == {"#1005", "#1006"}  # by phone


def test_shopify_customers_older_layout_is_keyed_by_email(shop):
    run(shop, "shopify_customers_old.csv", kind="customers")
    cara = Customer.objects.get(external_id="cara.moss@example.com")
    assert (cara.first_name, cara.region, cara.country) == ("Cara", "OR", "US")
    assert cara.phone == "+15035550103" and cara.accepts_email is True


def test_shopify_products_carry_the_title_to_every_variant(shop):
    out = run(shop, "shopify_products.csv", kind="products")
    assert out.counts.rows == 4  # the image-only row holds no product
    for sku in ("TEE-S", "TEE-M", "TEE-L"):
        tee = Product.objects.get(sku=sku)
        assert (tee.name, tee.category) == ("Garden tee", "T-shirts")
    assert Product.objects.get(sku="TEE-L").price == Decimal("22.00")
    kit = Product.objects.get(sku="seed-kit")  # no variant SKU: the handle
    assert (kit.name, kit.price) == ("Seed kit", Decimal("12.50"))
    assert Product.objects.count() == 4


def test_etsy_order_items(shop):
    run(shop, "etsy_order_items.csv")
    # Etsy's dates are month first: 03/04/26 is 4 March (no value in the file shows it)
    assert order("3001").ordered_at == dt.datetime(2026, 3, 4, 5, 0, tzinfo=UTC)
    assert order("3001").total == Decimal("18.00")  # 2 × 5 + 10, less 1.00 per item
    assert order("3002").status == "pending"  # no Date Paid
    assert order("3003").currency == "EUR"
    fox = Customer.objects.get(external_id="foxfan42")  # Etsy's Buyer
    assert fox.orders_count == 2
    assert Customer.objects.get(external_id="quietowl").orders_count == 0


def test_etsy_sold_orders(shop):
    run(shop, "etsy_sold_orders.csv")
    assert order("3001").total == Decimal("18.00")  # Order Value 20.00 less the coupon's 2.00
    assert order("3004").status == "cancelled"
    assert order("3005").status == "refunded"
    assert order("3004").customer.external_id == "9103"  # no Buyer: Etsy's buyer user id
    assert paid_revenue() == Decimal("28.00")


def test_stripe_payments(shop):
    run(shop, "stripe_payments.csv")
    # "Created date (UTC)": the times are UTC, not New York time
    assert order("ch_3Invented0001").ordered_at == dt.datetime(2026, 3, 5, 23, 30, tzinfo=UTC)
    assert order("ch_3Invented0002").total == Decimal("1200.00")
    assert order("ch_3Invented0003").status == "refunded"
    assert order("ch_3Invented0004").status == "cancelled"  # failed
    assert order("ch_3Invented0005").total == Decimal("70.00")  # 100 less 30 refunded
    assert order("ch_3Invented0007").status == "pending"  # not captured
    assert order("ch_3Invented0006").currency == "EUR"
    ana = Customer.objects.get(external_id="cus_InventedA")
    assert (ana.orders_count, ana.total_spent) == (2, Decimal("110.00"))
    # an empty Customer ID beside a filled email: the email is the customer
    ben = order("ch_3Invented0002").customer
    assert (ben.external_id, ben.email) == ("ben.osei@example.com", "ben.osei@example.com")
    assert Customer.objects.get(external_id="cus_InventedC").orders_count == 0


def test_stripe_corrected_reimport_replaces_rather_than_adds(shop):
    first = run(shop, "stripe_payments.csv", mapping={"Description": "", "Customer Email": ""})
    assert first.counts.created == 7
    # the map corrected: the same payments, now with their descriptions and emails
    corrected = run(shop, "stripe_payments.csv")
    assert corrected.counts.created == 0 and corrected.counts.updated == 7
    assert Order.objects.count() == 7
    assert counts(run(shop, "stripe_payments.csv")) == (7, 0, 0, 7, 0)
    assert Order.objects.count() == 7


def test_woocommerce_products(shop):
    run(shop, "woocommerce_products.csv", kind="products")
    hoodie = Product.objects.get(sku="HOOD")
    assert hoodie.category == "Clothing > Hoodies"  # the first of its categories
    assert hoodie.image_url == "https://example.com/hood-1.jpg"  # the first image
    assert Product.objects.get(sku="HOOD-GRY").in_stock is False
    beanie = Product.objects.get(sku="woo-104")  # no SKU: WooCommerce's id
    assert (beanie.name, beanie.price) == ("Beanie", Decimal("15.00"))


def test_woocommerce_orders(shop):
    run(shop, "woocommerce_products.csv", kind="products")
    run(shop, "woocommerce_orders.csv")
    first = order("2001")
    lines = list(first.lines.order_by("position"))
    assert [ln.sku for ln in lines] == ["HOOD-GRN", "woo-104"]
    assert [ln.amount for ln in lines] == [Decimal("40.50"), Decimal("13.50")]
    assert lines[0].discount_code == "trail10" and lines[0].discount_amount == Decimal("4.50")
    assert first.total == Decimal("54.00")
    assert lines[1].product.name == "Beanie"  # the product file's woo-104
    statuses = dict(Order.objects.values_list("external_id", "status"))
    assert statuses == {
        "2001": "paid",
        "2002": "paid",  # processing: paid, not yet shipped
        "2003": "pending",
        "2004": "cancelled",
        "2005": "refunded",
        "2006": "paid",
    }
    eli = Customer.objects.get(external_id="7")
    assert (eli.orders_count, eli.total_spent) == (2, Decimal("84.00"))
    assert (eli.first_name, eli.last_name) == ("Invented", "Buyer2005")  # the latest order's
    guest = order("2003").customer  # customer 0 is WooCommerce's guest: the email
    assert guest.external_id == "fay.quinn@example.com"


def test_square_item_details(shop):
    run(shop, "square_items.csv")
    tx = order("TX0001")
    # 09:15 Pacific Time (the row's own zone, not the organisation's) is 17:15 UTC
    assert tx.ordered_at == dt.datetime(2026, 3, 5, 17, 15, tzinfo=UTC)
    assert tx.total == Decimal("11.60")  # $9.00 + $3.50, less the -$0.90 discount
    assert order("TX0003").total == Decimal("1000.00")
    assert order("TX0002").customer is None  # a walk-in
    refund = order("TX0004")
    assert refund.is_return and refund.total == Decimal("-3.50")
    iris = Customer.objects.get(external_id="SQCUST01")
    assert (iris.orders_count, iris.total_spent) == (1, Decimal("8.10"))


def test_square_transactions(shop):
    run(shop, "square_transactions.csv")
    assert order("TX0001").total == Decimal("11.60")
    assert order("TX0005").status == "pending"
    assert order("TX0005").ordered_at == dt.datetime(2026, 3, 9, 23, 20, tzinfo=UTC)


def test_a_paid_correction_turns_a_voided_order_into_a_purchase(shop, tmp_path):
    run(shop, "shopify_orders.csv")
    assert Customer.objects.get(email="bob.rowe@example.com").orders_count == 0
    text = (SHOPS / "shopify_orders.csv").read_text()
    fixed = tmp_path / "orders.csv"
    fixed.write_text(
        text.replace("#1003,bob.rowe@example.com,voided", "#1003,bob.rowe@example.com,paid")
    )
    out = run(shop, "", path=fixed)
    assert out.counts.updated == 1
    bob = Customer.objects.get(email="bob.rowe@example.com")
    assert (bob.orders_count, bob.total_spent) == (1, Decimal("500.00"))


def test_an_unknown_payment_status_is_rejected_not_counted(shop, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,amount,financial_status\n"
        "A1,c1,2026-03-01,10,paid\nA2,c1,2026-03-02,20,weird\nA3,c1,2026-03-03,30,wc-on-hold\n"
    )
    out = run(shop, "", path=path)
    assert counts(out) == (3, 2, 0, 0, 1)
    assert out.errors[0]["field"] == "financial_status" and out.errors[0]["value"] == "weird"
    assert order("A3").status == "pending"
    assert Customer.objects.get(external_id="c1").total_spent == Decimal("10")


def test_a_zone_in_a_generic_header_is_honoured(shop, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("order_id,Order date (UTC),amount\nA1,2026-03-01 23:00,10\n")
    run(shop, "", path=path)
    assert order("A1").ordered_at == dt.datetime(2026, 3, 1, 23, 0, tzinfo=UTC)


def test_a_leading_apostrophe_is_not_part_of_an_id(shop, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,email,phone\n'00042,a@example.com,'+44 20 7946 0000\n")
    run(shop, "", kind="customers", path=path)
    customer = Customer.objects.get()
    assert (customer.external_id, customer.phone) == ("00042", "+44 20 7946 0000")


def test_the_pages_name_the_layout_and_the_other_currencies(shop, owner_client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from customers.services.importing import import_create, import_start

    upload = SimpleUploadedFile("orders_export.csv", (SHOPS / "shopify_orders.csv").read_bytes())
    imp = import_create(organization=shop, kind="orders", uploaded_file=upload)
    mapping_page = owner_client.get(reverse("customers:import_detail", args=[imp.pk]))
    assert "<strong>Shopify orders</strong> export" in mapping_page.content.decode()
    import_start(imp=imp, sync=True)
    report = owner_client.get(reverse("customers:import_detail", args=[imp.pk])).content.decode()
    assert "recognised as a Shopify orders export" in report  # not "Shopifyorders"
    assert "Amounts in ZAR besides USD" in report
    dashboard = owner_client.get("/").content.decode()
    assert "Revenue in other currencies" in dashboard and "ZAR 690" in dashboard
    assert "paid orders, net of returns and discounts, without shipping and taxes" in dashboard


def test_the_wizard_keeps_the_owners_choices_after_a_refusal(owner_client, org):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.tenancy import tenant_context
    from customers.models import Import

    content = b"Rechnung;Kunde;Datum;Artikel;Menge;Preis\n1;c1;2024-01-02;A;1;2,50\n"
    r = owner_client.post(
        "/customers/imports/new/",
        {"kind": "orders", "file": SimpleUploadedFile("kasse.csv", content)},
    )
    with tenant_context(org):
        imp = Import.objects.get()
    chosen = {"map_0": "order_id", "map_1": "customer_id", "map_2": "ordered_at"}
    chosen |= {"map_3": "sku", "map_4": "sku", "map_5": "unit_price"}  # sku twice
    r = owner_client.post(f"/customers/imports/{imp.pk}/map/", {**chosen, "action": "check"})
    assert r.status_code == 400
    rows = {row["column"]: row["current"] for row in r.context["mapping_rows"]}
    assert rows == {
        "Rechnung": "order_id",
        "Kunde": "customer_id",
        "Datum": "ordered_at",
        "Artikel": "sku",
        "Menge": "sku",
        "Preis": "unit_price",
    }
    # no required column: the page says so in its own words, not the command's
    missing = {"map_0": "order_id", "map_1": "customer_id", "map_2": "", "map_5": "unit_price"}
    r = owner_client.post(f"/customers/imports/{imp.pk}/map/", {**missing, "action": "check"})
    html = r.content.decode()
    assert r.status_code == 400 and "no column for ordered_at" in html
    assert "--map" not in html


def test_the_order_page_shows_payment_status_and_discount(shop, owner_client):
    run(shop, "shopify_orders.csv")
    voided = owner_client.get(f"/customers/orders/{order('#1003').pk}/").content.decode()
    assert "Cancelled: not in revenue" in voided
    discounted = owner_client.get(f"/customers/orders/{order('#1001').pk}/").content.decode()
    assert "5.00 (SAVE5)" in discounted


def test_an_older_order_does_not_undo_a_later_unsubscribe(shop):
    from accounts.actor import Actor
    from customers.services.consent import consent_change

    run(shop, "shopify_orders.csv")
    ada = Customer.objects.get(email="ada.lane@example.com")
    consent_change(
        customer=ada, channel="email", granted=False, actor=Actor.system("link"), via="unsubscribe"
    )
    again = run(shop, "shopify_orders.csv")
    assert again.counts.unchanged == 8
    ada.refresh_from_db()
    assert ada.accepts_email is False  # her unsubscribe is later than the order's yes


def test_the_orders_api_gives_status_and_discounts(shop, api):
    run(shop, "shopify_orders.csv")
    r = api.get("/api/v1/orders/", {"external_id": "#1001"})
    body = r.json()["results"][0]
    assert body["status"] == "paid" and body["total"] == "30.0000"
    first = body["lines"][0]
    assert (first["discount_code"], first["discount_amount"]) == ("SAVE5", "5.0000")
    voided = api.get("/api/v1/orders/", {"external_id": "#1003"}).json()["results"][0]
    assert voided["status"] == "cancelled"


def test_bulk_order_records_carry_status_and_discount(shop, api):
    records = [
        {
            "order_id": "B1",
            "customer_id": "k1",
            "ordered_at": "2026-03-01T10:00:00Z",
            "amount": "50",
            "discount_code": "TEN",
            "discount_amount": "10",
        },
        {
            "order_id": "B2",
            "customer_id": "k1",
            "ordered_at": "2026-03-02T10:00:00Z",
            "amount": "70",
            "status": "voided",
        },
    ]
    r = api.post("/api/v1/orders/bulk/", records, format="json")
    assert r.status_code == 200 and r.json()["created"] == 2, r.json()
    assert order("B1").total == Decimal("40") and order("B2").status == "cancelled"
    k1 = Customer.objects.get(external_id="k1")
    assert (k1.orders_count, k1.total_spent) == (1, Decimal("40"))


def test_woocommerce_analytics_orders(shop):
    run(shop, "woocommerce_analytics_orders.csv")
    assert order("2001").total == Decimal("54.00")  # Net Sales: after the coupon
    assert order("2001").lines.get().discount_code == "trail10"
    assert order("2003").status == "pending" and order("2004").status == "cancelled"
    eli = Customer.objects.get(external_id="Eli Moon")  # the name is the only identity
    assert (eli.orders_count, eli.total_spent) == (2, Decimal("84.00"))
    assert (eli.first_name, eli.last_name) == ("Eli", "Moon")


def test_etsy_sold_orders_without_a_buyer_column(shop):
    run(shop, "etsy_sold_orders_old.csv")
    assert order("3101").customer.external_id == "9201"  # Buyer User ID


def test_square_in_pounds_names_its_currency(shop, tmp_path):
    text = (SHOPS / "square_items.csv").read_text().replace("$", "£")
    path = tmp_path / "items.csv"
    path.write_text(text)
    run(shop, "", path=path)
    assert order("TX0001").currency == "GBP" and order("TX0001").total == Decimal("11.60")


def test_an_order_discount_larger_than_its_first_line_is_shared(shop, tmp_path):
    header = (SHOPS / "shopify_orders.csv").read_text().splitlines()[0]
    cols = header.split(",")

    def row(**cells):
        return ",".join(cells.get(c, "") for c in cols)

    base = {"Name": "#9001", "Email": "zed@example.com", "Created at": "2026-03-02 10:00:00 -0500"}
    path = tmp_path / "orders.csv"
    lines = [
        header,
        row(
            **base,
            **{
                "Financial Status": "paid",
                "Currency": "USD",
                "Discount Code": "BIG",
                "Discount Amount": "5.00",
                "Lineitem quantity": "1",
                "Lineitem name": "Sticker",
                "Lineitem price": "2.00",
                "Lineitem sku": "ST",
            },
        ),
        row(
            **base,
            **{
                "Lineitem quantity": "1",
                "Lineitem name": "Poster",
                "Lineitem price": "18.00",
                "Lineitem sku": "PO",
            },
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    run(shop, "", path=path)
    placed = order("#9001")
    amounts = [ln.amount for ln in placed.lines.order_by("position")]
    assert amounts == [Decimal("1.50"), Decimal("13.50")]  # 5.00 shared 2 : 18
    assert placed.total == Decimal("15.00") and not placed.is_return


def test_the_models_read_paid_orders_only(shop):
    from customers.history import History

    run(shop, "shopify_orders.csv")
    history = History(shop, dt.date(2026, 3, 31))
    paid = {o.pk for o in Order.objects.filter(status="paid")}
    assert set(history.order_lines()["order_id"]) == paid
    assert history.purchases().n_orders == len(paid)
    sold = set(history.product_sales(weeks=8)["sku"])
    assert "BRD-1" not in sold and "BOWL-1" in sold  # the voided board; the paid bowl


# --- issue 14 items 1, 2 and 6: customers exports' figures and consent times, currencies


def test_customers_export_figures_until_orders_arrive_then_orders_alone(shop):
    out = run(shop, "shopify_customers.csv", kind="customers")
    assert counts(out) == (3, 3, 0, 0, 0)
    ada = Customer.objects.get(external_id="8800000000101")
    # Shopify's Total Orders and Total Spent: the customer's figures, not attributes
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("45.00"))
    assert "Total Spent" not in ada.attributes and "Total Orders" not in ada.attributes
    assert counts(run(shop, "shopify_customers.csv", kind="customers")) == (3, 0, 0, 3, 0)
    # the orders arrive: her figures are her orders' (30 + 15 less the 5 refunded),
    # never the export's 45 plus them
    run(shop, "shopify_orders.csv")
    ada.refresh_from_db()
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("40.00"))
    assert ada.first_order_at is not None
    thandi = Customer.objects.get(external_id="8800000000103")
    # two purchases in rand: counted, their amounts not added to dollars
    assert (thandi.orders_count, thandi.total_spent) == (2, Decimal(0))
    # the export again (its phone, written another way than the order's, is the
    # only change), and the orders again: the figures stay the orders'
    run(shop, "shopify_customers.csv", kind="customers")
    ada.refresh_from_db()
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("40.00"))
    assert counts(run(shop, "shopify_customers.csv", kind="customers")) == (3, 0, 0, 3, 0)
    assert counts(run(shop, "shopify_orders.csv")) == (8, 0, 0, 8, 0)
    ada.refresh_from_db()
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("40.00"))


def test_a_customers_first_pending_order_does_not_leave_the_export_figures_to_add_to(
    shop, tmp_path
):
    head = (
        "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Total Spent,Total Orders\n"
    )
    customers = tmp_path / "customers.csv"
    customers.write_text(head + "'7,Ann,Lee,ann@example.com,no,100.00,4\n")
    run(shop, "", kind="customers", path=customers)
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,amount,financial_status\nA1,7,2026-03-01,30.00,pending\n"
    )
    run(shop, "", path=orders)
    ann = Customer.objects.get(external_id="7")
    assert (ann.orders_count, ann.total_spent) == (0, Decimal(0))  # her orders say so
    orders.write_text(orders.read_text() + "A2,7,2026-03-02,20.00,paid\n")
    run(shop, "", path=orders)
    ann.refresh_from_db()
    assert (ann.orders_count, ann.total_spent) == (1, Decimal("20.00"))


def test_consent_times_from_a_customers_export(shop, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,"
        "Email Marketing Consent Updated At,Accepts SMS Marketing,"
        "SMS Marketing Consent Updated At,Total Spent,Total Orders\n"
        "'11,Ada,Lane,ada@example.com,yes,2025-06-01 09:30:00 -0400,yes,"
        "2025-07-02T10:00:00Z,0.00,0\n"
    )
    out = run(shop, "", kind="customers", path=path)
    assert out.detected["format"] == "shopify_customers"
    ada = Customer.objects.get(external_id="11")
    assert ada.email_consent_at == dt.datetime(2025, 6, 1, 13, 30, tzinfo=UTC)
    assert ada.sms_consent_at == dt.datetime(2025, 7, 2, 10, 0, tzinfo=UTC)
    change = ada.consent_changes.get(channel="email")
    assert change.changed_at == dt.datetime(2025, 6, 1, 13, 30, tzinfo=UTC)
    assert change.via == "import"
    assert counts(run(shop, "", kind="customers", path=path)) == (1, 0, 0, 1, 0)
    assert ada.consent_changes.count() == 2
    # a generic customers file names it too
    path.write_text(
        "customer_id,accepts_marketing,accepts_marketing_updated_at\n12,yes,2024-01-05\n"
    )
    run(shop, "", kind="customers", path=path)
    assert Customer.objects.get(external_id="12").email_consent_at.date() == dt.date(2024, 1, 5)


def test_customer_spend_never_adds_two_currencies(shop, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,amount,currency\n"
        "1,c1,2026-03-01,10.00,USD\n"
        "2,c1,2026-03-02,20.00,EUR\n"
        "3,c1,2026-03-03,5.00,\n"
    )
    out = run(shop, "", path=path)
    assert out.detected["other_currencies"] == ["EUR"]
    c1 = Customer.objects.get(external_id="c1")
    assert (c1.orders_count, c1.total_spent) == (3, Decimal("15.00"))
    # recomputed from the orders (a correction), the same
    from customers.services.stats import customer_stats_refresh

    customer_stats_refresh(organization_id=shop.pk, customer_ids=[c1.pk])
    c1.refresh_from_db()
    assert (c1.orders_count, c1.total_spent) == (3, Decimal("15.00"))


def test_other_currencies_converted_at_the_owners_rate(shop):
    out = run(shop, "shopify_orders.csv", rates={"zar": "0.055"})
    assert out.detected["other_currencies"] == ["ZAR"]
    assert out.detected["converted"] == {"ZAR": "0.055"}
    cups = order("#1005")
    assert (cups.currency, cups.total) == ("USD", Decimal("13.20"))  # 240 × 0.055
    assert cups.properties["original_currency"] == "ZAR"
    assert cups.properties["original_total"] == "240"
    assert cups.properties["exchange_rate"] == "0.055"
    thandi = Customer.objects.get(external_id="+27825550102")
    assert (thandi.orders_count, thandi.total_spent) == (2, Decimal("37.95"))  # 13.20 + 24.75
    summary = dashboard_summary(organization=shop)
    assert summary["revenue"] == Decimal("77.95")  # 40.00 in dollars + 37.95 converted
    assert summary["other_currencies"] == []
    # the same rate again changes nothing; a corrected rate replaces, never adds
    assert counts(run(shop, "shopify_orders.csv", rates={"ZAR": "0.055"})) == (8, 0, 0, 8, 0)
    assert counts(run(shop, "shopify_orders.csv", rates={"ZAR": "0.06"})) == (8, 0, 3, 5, 0)
    thandi.refresh_from_db()
    assert (thandi.orders_count, thandi.total_spent) == (2, Decimal("41.40"))  # 14.40 + 27.00
    assert Order.objects.count() == 7


def test_a_rate_is_a_currency_and_a_positive_number(shop):
    from core.exceptions import ApplicationError

    for rates in ({"RAND": "0.05"}, {"ZAR": "0"}, {"ZAR": "cheap"}):
        with pytest.raises(ApplicationError):
            run(shop, "shopify_orders.csv", rates=rates)
    assert not Order.objects.exists()


def test_the_command_takes_a_rate(shop, capsys):
    import json

    from django.core.management import call_command

    call_command(
        "import_data",
        "--org",
        shop.slug,
        "--kind",
        "orders",
        "--rate",
        "ZAR=0.055",
        str(SHOPS / "shopify_orders.csv"),
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rejected"] == 0
    assert (order("#1006").currency, order("#1006").total) == ("USD", Decimal("24.75"))
    from customers.models import Import

    assert Import.objects.get().options["rates"] == {"ZAR": "0.055"}


def test_the_wizard_flags_other_currencies_at_the_check_and_converts_at_a_rate(shop, owner_client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from customers.services.importing import import_create

    upload = SimpleUploadedFile("orders_export.csv", (SHOPS / "shopify_orders.csv").read_bytes())
    imp = import_create(organization=shop, kind="orders", uploaded_file=upload)
    form = {f"map_{i}": target for i, target in enumerate(_choices(imp))}
    check = owner_client.post(
        reverse("customers:import_map", args=[imp.pk]), {**form, "action": "check"}
    ).content.decode()
    assert "Amounts in ZAR besides USD" in check  # said before anything is imported
    assert not Order.objects.exists()
    checked = owner_client.post(
        reverse("customers:import_map", args=[imp.pk]),
        {**form, "action": "check", "rates": "ZAR=0.055"},
    ).content.decode()
    assert "converted at 1 ZAR = 0.055 USD" in checked
    assert 'value="ZAR=0.055"' in checked  # the owner's rate is kept in the form
    imp.refresh_from_db()
    assert imp.options["rates"] == {"ZAR": "0.055"}
    bad = owner_client.post(
        reverse("customers:import_map", args=[imp.pk]), {**form, "action": "check", "rates": "ZAR"}
    )
    assert bad.status_code == 400 and "CURRENCY=rate" in bad.content.decode()


def _choices(imp):
    """The wizard's choices as suggested: each column's field, or kept as an attribute."""
    from customers.services.imports import FIELDS

    return [
        imp.mapping.get(c, c) if imp.mapping.get(c, c) in FIELDS[imp.kind] else "@"
        for c in imp.detected["columns"]
    ]
