"""The import engine on messy files: each case a user would meet."""

import datetime as dt
import gzip
import shutil
from decimal import Decimal

import pytest

from core.exceptions import ApplicationError
from customers.models import ConsentChange, Customer, Event, Feedback, Order, OrderLine, Product
from customers.services.imports import run_file
from customers.services.imports.reader import Unreadable

from .factories import DATA

pytestmark = pytest.mark.django_db


def run(org, name, kind="orders", **options):
    return run_file(organization=org, path=str(DATA / name), kind=kind, **options)


def counts(outcome):
    c = outcome.counts
    return c.rows, c.created, c.updated, c.unchanged, c.rejected


def test_windows_1252_semicolons_decimal_commas_and_quoted_newlines(in_org):
    out = run(
        in_org,
        "orders_cp1252_semicolon.csv",
        mapping={
            "Rechnung": "order_id",
            "Kunde": "customer_id",
            "Datum": "ordered_at",
            "Artikel": "sku",
            "Bezeichnung": "product_name",
            "Menge": "quantity",
            "Einzelpreis": "unit_price",
        },
    )
    assert out.detected["encoding"] == "cp1252"
    assert out.detected["delimiter"] == ";"
    assert counts(out) == (4, 4, 0, 0, 0)
    order = Order.objects.get(external_id="1001")
    lines = list(order.lines.order_by("position"))
    assert lines[0].product_name == "Crème brûlée dish"
    assert lines[1].product_name == "Café set,\nfour cups"
    assert lines[1].unit_price == Decimal("1234.00")
    assert order.total == Decimal("1243.00")
    # 13/04 settles the column as day-first, so 03/04 is 3 April.
    assert order.ordered_at.date() == dt.date(2011, 4, 3)
    assert Order.objects.get(external_id="1003").total == Decimal("6.00")


def test_bom_tabs_and_ids_with_leading_zeros(in_org):
    out = run(in_org, "orders_bom_tab.tsv")
    assert out.detected["encoding"] == "utf-8-sig"
    assert counts(out) == (3, 3, 0, 0, 0)
    assert Customer.objects.filter(external_id="00042").exists()
    assert Order.objects.get(external_id="A-1").lines.count() == 2


def test_gzip_files(in_org, tmp_path):
    target = tmp_path / "orders.csv.gz"
    with open(DATA / "orders_bom_tab.tsv", "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    out = run_file(organization=in_org, path=str(target), kind="orders")
    assert out.detected["gzip"] is True
    assert counts(out) == (3, 3, 0, 0, 0)


def test_ambiguous_dates_are_refused_and_nothing_is_stored(in_org):
    with pytest.raises(ApplicationError) as exc:
        run(in_org, "orders_ambiguous_dates.csv")
    assert "03/04/2011" in exc.value.message
    assert "--date-format" in exc.value.message
    assert not Order.objects.exists() and not Customer.objects.exists()


def test_ambiguous_dates_import_with_a_format(in_org):
    out = run(in_org, "orders_ambiguous_dates.csv", date_format="%m/%d/%Y %H:%M")
    assert counts(out) == (3, 3, 0, 0, 0)
    assert Order.objects.get(external_id="1").ordered_at.date() == dt.date(2011, 3, 4)


def test_cancellations_returns_guests_and_repeated_lines(in_org):
    out = run(in_org, "orders_returns_guests.csv")
    assert counts(out) == (7, 7, 0, 0, 0)
    order = Order.objects.get(external_id="536365")
    assert order.lines.count() == 3  # the repeated identical line is kept
    assert order.total == Decimal("6") * Decimal("2.55") + 2 * 6 * Decimal("3.39")
    # the country is the customer's (issue 9), not a property of the order
    assert order.properties == {}
    assert order.customer.country == "United Kingdom"
    assert order.ordered_at.date() == dt.date(2010, 12, 1)
    cancel = Order.objects.get(external_id="C536379")
    assert cancel.is_return and cancel.total == Decimal("-27.50")
    guest = Order.objects.get(external_id="536380")
    assert guest.customer is None and guest.total == Decimal("34.80")
    # Returns reduce revenue and are not purchases.
    c = Customer.objects.get(external_id="15311")
    assert c.orders_count == 1
    assert c.total_spent == Decimal("0.30")
    assert c.last_order_at.date() == dt.date(2010, 12, 13)
    assert not Customer.objects.filter(external_id="").exists()
    assert Product.objects.filter(sku="85123A", name="WHITE HANGING HEART T-LIGHT HOLDER").exists()


def test_order_level_rows_without_ids_do_not_duplicate(in_org):
    out = run(in_org, "orders_no_ids.csv")
    assert counts(out) == (5, 5, 0, 0, 0)
    assert Order.objects.count() == 5  # the two identical rows are two orders
    big = Order.objects.get(customer__external_id="c-1", total=Decimal("1250.00"))
    assert big.channel == "web"
    line = big.lines.get()
    assert line.quantity == 1 and line.amount == Decimal("1250.00") and line.sku == ""
    assert Order.objects.filter(customer__isnull=True).count() == 1
    again = run(in_org, "orders_no_ids.csv")
    assert counts(again) == (5, 0, 0, 5, 0)
    assert Order.objects.count() == 5


def test_bad_rows_are_named_and_good_rows_stored(in_org):
    out = run(in_org, "orders_bad_rows.csv")
    assert counts(out) == (6, 2, 0, 0, 4)
    by_row = {e["row"]: e for e in out.errors}
    assert by_row[2]["field"] == "amount"
    assert "12 does not match quantity × unit_price (3 × 3.5 = 10.5)" in by_row[2]["message"]
    assert by_row[3]["field"] == "ordered_at" and "next tuesday" in by_row[3]["message"]
    assert by_row[4]["field"] == "unit_price" and "required" in by_row[4]["message"]
    assert by_row[5]["field"] == "quantity" and "whole number" in by_row[5]["message"]
    assert set(Order.objects.values_list("external_id", flat=True)) == {"O1", "O6"}


def test_errors_file_has_every_rejected_row(in_org, tmp_path):
    path = tmp_path / "errors.csv"
    run(in_org, "orders_bad_rows.csv", errors_csv=str(path))
    lines = path.read_text().splitlines()
    assert lines[0] == "row,field,message,value,customer_id"
    assert len(lines) == 5


def test_shopify_orders_export_without_mapping(in_org):
    out = run(in_org, "shopify_orders_export.csv")
    assert out.detected["format"] == "shopify_orders"
    assert counts(out) == (3, 3, 0, 0, 0)
    order = Order.objects.get(external_id="#1001")
    assert order.currency == "USD"
    assert order.total == Decimal("35.00")
    assert order.channel == "web"
    assert order.ordered_at == dt.datetime(2023, 5, 1, 14, 22, 11, tzinfo=dt.UTC)
    assert order.properties["Total"] == "40.00"
    assert order.properties["Billing Name"] == "Ada Lovelace"
    # No customer id column: the email identifies the customer.
    assert order.customer.email == "ada@example.com"
    assert order.customer.external_id == "ada@example.com"


def test_shopify_customers_after_orders_adopt_the_customer(in_org):
    run(in_org, "shopify_orders_export.csv")
    out = run(in_org, "shopify_customers_export.csv", kind="customers")
    assert out.detected["format"] == "shopify_customers"
    assert counts(out)[0] == 2 and out.counts.rejected == 0
    ada = Customer.objects.get(external_id="7001")
    assert ada.email == "ada@example.com"
    assert ada.orders.count() == 1 and ada.orders_count == 1  # the order is hers
    assert (ada.city, ada.region, ada.country, ada.postal_code) == ("London", "ENG", "GB", "N1 9GU")
    assert ada.accepts_email and not ada.accepts_sms
    # the export's Total Spent is a figure, not an attribute; her order is the truth
    assert "Total Spent" not in ada.attributes
    assert ada.total_spent == ada.orders.get().total
    assert Customer.objects.count() == 2


def test_customers_blank_cells_keep_values_and_custom_columns_are_attributes(in_org):
    out = run(in_org, "customers_messy.csv", kind="customers")
    assert counts(out) == (3, 2, 0, 0, 1)
    assert out.errors[0]["row"] == 3 and out.errors[0]["field"] == "email"
    ada = Customer.objects.get(external_id="00042")
    assert ada.attributes == {"loyalty_tier": "gold"}
    assert ada.birth_date == dt.date(1815, 12, 10)
    assert ada.accepts_email is True
    assert ConsentChange.objects.filter(customer=ada, channel="email", granted=True).count() == 1
    # A second file with blank cells changes only what it names.
    again = run(in_org, "customers_messy.csv", kind="customers")
    assert counts(again) == (3, 0, 0, 2, 1)
    assert ConsentChange.objects.count() == 1


def test_products_shopify_layout(in_org):
    out = run(in_org, "products_shopify.csv", kind="products")
    assert counts(out) == (2, 2, 0, 0, 0)
    mitt = Product.objects.get(sku="MIT-1")
    assert mitt.price == Decimal("1015.00") and mitt.category == "Kitchen"
    assert mitt.attributes == {"Handle": "oven-mitt", "Vendor": "Acme"}


def test_events_with_and_without_ids(in_org):
    out = run(in_org, "events.csv", kind="events")
    assert counts(out) == (3, 3, 0, 0, 0)
    assert Event.objects.count() == 3
    assert Event.objects.get(external_id="e1").properties == {"page": "/home"}
    assert counts(run(in_org, "events.csv", kind="events")) == (3, 0, 0, 3, 0)
    assert Event.objects.count() == 3


def test_feedback_review_export(in_org):
    out = run(in_org, "feedback_reviews.tsv", kind="feedback")
    assert counts(out) == (2, 2, 0, 0, 0)
    bad = Feedback.objects.get(rating=1)
    assert bad.text == "Stopped working,\nafter a week"
    assert bad.created_at.date() == dt.date(2018, 7, 30)
    assert bad.properties == {"variation": "Walnut Finish", "feedback": "0"}


def test_a_good_file_imported_twice_changes_nothing(in_org):
    first = run(in_org, "orders_returns_guests.csv")
    stamps = dict(Order.objects.values_list("external_id", "updated_at"))
    second = run(in_org, "orders_returns_guests.csv")
    assert counts(second) == (7, 0, 0, 7, 0)
    assert not second.changed_anything and first.changed_anything
    assert dict(Order.objects.values_list("external_id", "updated_at")) == stamps
    assert OrderLine.objects.count() == 7


def test_reimporting_an_order_replaces_its_lines(in_org, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\nX,c,2024-01-01,A,1,2\nX,c,2024-01-01,B,1,3\n"
    )
    run_file(organization=in_org, path=str(path), kind="orders")
    path.write_text(
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\nX,c,2024-01-01,A,2,2\n"
    )
    out = run_file(organization=in_org, path=str(path), kind="orders")
    assert counts(out) == (1, 0, 1, 0, 0)
    order = Order.objects.get(external_id="X")
    assert list(order.lines.values_list("sku", "quantity")) == [("A", 2)]
    assert order.total == Decimal("4")
    assert Customer.objects.get(external_id="c").total_spent == Decimal("4")


def test_scattered_order_rows_are_one_order(in_org, tmp_path):
    path = tmp_path / "o.csv"
    rows = ["order_id,customer_id,ordered_at,sku,quantity,unit_price"]
    rows += [
        "S,c,2024-01-01,A,1,1",
        "T,d,2024-01-02,A,1,1",
        "S,c,2024-01-01,B,1,1",
        "T,d,2024-01-02,C,1,1",
    ]
    path.write_text("\n".join(rows) + "\n")
    out = run_file(organization=in_org, path=str(path), kind="orders", chunk_size=1)
    assert counts(out) == (4, 4, 0, 0, 0)
    assert sorted(Order.objects.get(external_id="S").lines.values_list("sku", flat=True)) == [
        "A",
        "B",
    ]
    again = run_file(organization=in_org, path=str(path), kind="orders", chunk_size=1)
    assert counts(again) == (4, 0, 0, 4, 0)


def test_unreadable_files_store_nothing(in_org, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(Unreadable, match="empty"):
        run_file(organization=in_org, path=str(empty), kind="orders")
    xlsx = tmp_path / "book.csv"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(Unreadable, match="Excel"):
        run_file(organization=in_org, path=str(xlsx), kind="orders")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,colour\nmug,blue\n")
    with pytest.raises(ApplicationError, match="no column for ordered_at"):
        run_file(organization=in_org, path=str(wrong), kind="orders")
    assert not Order.objects.exists() and not Customer.objects.exists()


def test_an_encoding_error_late_in_the_file_falls_back_before_writing(in_org, tmp_path):
    # The sample at the start is plain ASCII; a Windows-1252 byte comes much later.
    rows = ["order_id,customer_id,ordered_at,sku,product_name,quantity,unit_price"]
    rows += [f"{i},c{i % 7},2024-01-01,S{i % 3},Mug,1,2.00" for i in range(20000)]
    rows.append("last,c1,2024-01-02,S9,Caf\xe9 cr\xe8me,1,3.00")
    path = tmp_path / "late.csv"
    path.write_bytes("\n".join(rows).encode("cp1252"))
    out = run_file(organization=in_org, path=str(path), kind="orders")
    assert out.counts.rejected == 0 and out.counts.rows == 20001
    assert OrderLine.objects.get(sku="S9").product_name == "Café crème"


def test_statistics_added_per_chunk_equal_a_full_recount(in_org, tmp_path):
    rows = ["order_id,customer_id,ordered_at,sku,quantity,unit_price"]
    for i in range(3000):
        qty = -1 if i % 17 == 0 else 1 + i % 3
        rows.append(
            f"{'C' if qty < 0 else ''}{i},c{i * 7 % 23},2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d},S{i % 5},{qty},2.25"
        )
    path = tmp_path / "many.csv"
    path.write_text("\n".join(rows) + "\n")
    run_file(organization=in_org, path=str(path), kind="orders", chunk_size=100)
    added = sorted(
        Customer.objects.values_list(
            "pk", "orders_count", "total_spent", "first_order_at", "last_order_at"
        )
    )
    from customers.services.stats import customer_stats_refresh

    customer_stats_refresh(organization_id=in_org.pk, customer_ids=[r[0] for r in added])
    recounted = sorted(
        Customer.objects.values_list(
            "pk", "orders_count", "total_spent", "first_order_at", "last_order_at"
        )
    )
    assert added == recounted
    assert sum(r[1] for r in added) == sum(1 for i in range(3000) if i % 17)
