"""Customers → Import: upload an orders CSV → preview and suggested mapping → check →
import → progress reaches done → report with the rejected row → customers listed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from customers.models import Customer, Import
from customers.tasks import import_run

pytestmark = pytest.mark.django_db(transaction=True)

# Online Retail layout (M/D/YYYY H:MM dates; 12/13 settles the date order).
# Row 5 (the fifth after the header) has a quantity that is not a number.
ORDERS_CSV = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/2010 8:34,1.69,13047,United Kingdom
536367,22745,POPPY'S PLAYHOUSE BEDROOM,lots,12/1/2010 8:34,2.10,13047,United Kingdom
536367,22748,POPPY'S PLAYHOUSE KITCHEN,6,12/1/2010 8:34,2.10,13047,United Kingdom
536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/1/2010 8:45,3.75,12583,France
536370,22727,ALARM CLOCK BAKELIKE RED,24,12/1/2010 8:45,3.75,12583,France
536370,POST,POSTAGE,3,12/1/2010 8:45,18.00,12583,France
536389,22941,CHRISTMAS LIGHTS 10 REINDEER,6,12/13/2010 10:03,8.50,12431,Australia
536389,21622,VINTAGE UNION JACK CUSHION COVER,8,12/13/2010 10:03,4.95,12431,Australia
536390,20668,DISCO BALL CHRISTMAS DECORATION,288,12/13/2010 10:19,0.10,17511,United Kingdom
"""


def _log_in(page, site, user):
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")


def test_import_orders_file_through_the_wizard(site, page, owner, org, tmp_path, monkeypatch):
    csv_file = tmp_path / "online_retail_sample.csv"
    csv_file.write_text(ORDERS_CSV, encoding="utf-8")

    # Hold the import's task back when the site queues it, so the progress bar is seen
    # before the test plays the worker (eager Celery would finish it inside the request).
    queued = []

    class _Sent:
        id = "held-by-test"

    def hold(*args, kwargs=None, **options):
        queued.append(kwargs)
        return _Sent()

    monkeypatch.setattr(import_run, "apply_async", hold)

    page.set_default_timeout(10_000)
    _log_in(page, site, owner)

    # Customers → Import a file.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
    page.get_by_role("link", name="Import a file").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import a file")
    page.get_by_label("What the file holds").select_option("orders")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and preview").click()

    # Preview: each column with its first values and a suggested meaning.
    expect(page.get_by_role("heading", level=1)).to_contain_text("online_retail_sample.csv")
    columns = page.get_by_role("table", name="Columns of the file and what they mean")
    expect(columns.get_by_role("row")).to_have_count(9)  # header + 8 columns
    expect(columns.get_by_role("row", name=re.compile("^InvoiceNo"))).to_contain_text("536365")
    expect(columns.get_by_role("row", name=re.compile("^Description"))).to_contain_text(
        "WHITE HANGING HEART"
    )
    suggested = {
        "InvoiceNo": "order_id",
        "CustomerID": "customer_id",
        "InvoiceDate": "ordered_at",
        "Quantity": "quantity",
        "UnitPrice": "unit_price",
    }
    for column, field in suggested.items():
        expect(page.get_by_label(f"Read column {column} as")).to_have_value(field)

    # Check a sample: nothing stored, the bad row named.
    page.get_by_role("button", name="Check the first 1,000 rows").click()
    check = page.get_by_role("status").filter(has_text="nothing was stored")
    expect(check).to_contain_text("Check of the first 12 rows")
    would_reject = check.get_by_role("table", name="Rows that would be rejected")
    expect(would_reject.get_by_role("row")).to_have_count(2)
    expect(would_reject.get_by_role("row").nth(1)).to_contain_text("5")
    expect(would_reject.get_by_role("row").nth(1)).to_contain_text("lots")
    with tenant_context(org):
        assert not Customer.objects.exists()

    # Import: the job is queued and its progress bar shows.
    page.get_by_role("button", name="Import", exact=True).click()
    progress = page.get_by_role("progressbar")
    expect(progress).to_be_visible()
    assert len(queued) == 1, queued

    # The worker runs the task; the bar polls its way to done.
    import_run.apply(kwargs=queued[0])
    # Progress and report are one block that reloads itself: when the job is done the
    # bar gives way to the report, with no refresh and no stale status beside it.
    expect(progress).to_have_count(0, timeout=10_000)
    expect(page.locator("#import-status")).not_to_contain_text("Queued")
    counts = page.get_by_label("Counts")
    expect(counts).to_contain_text("Rows read")
    expect(counts.locator(".stat", has_text="Rejected")).to_contain_text("1")
    expect(page.get_by_text("Customers created")).to_be_visible()
    rejected = page.get_by_role("table", name=re.compile("Every rejected row"))
    bad = rejected.get_by_role("row").nth(1)
    cells = bad.get_by_role("cell")
    expect(cells.nth(0)).to_have_text("5")
    expect(cells.nth(1)).to_contain_text("quantity", ignore_case=True)
    expect(cells.nth(2)).not_to_be_empty()
    expect(cells.nth(3)).to_have_text("lots")

    with tenant_context(org):
        imp = Import.objects.get()
    assert imp.status == "succeeded", imp.message
    assert (imp.rows, imp.rejected) == (12, 1)

    # The customers list shows the five customers named by the file.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    table = page.get_by_role("table")
    for external_id in ("17850", "13047", "12583", "12431", "17511"):
        expect(table.get_by_role("cell", name=external_id, exact=True)).to_be_visible()
    expect(page.get_by_text("5 customers")).to_be_visible()
