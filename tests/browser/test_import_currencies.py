"""The import wizard's check step says when a file holds another currency than the
organisation's, and takes a rate to convert it, on a phone and a laptop."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)

SHOPIFY = Path(__file__).resolve().parents[1] / "data" / "shops" / "shopify_orders.csv"
WIDE = "document.documentElement.scrollWidth > window.innerWidth"


@pytest.mark.parametrize("width", [390, 1366])
def test_check_step_flags_and_converts_another_currency(site, page, owner, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")
    page.goto(f"{site}/customers/imports/new/")
    page.get_by_label("What the file holds").select_option("orders")
    page.get_by_label("CSV file").set_input_files(str(SHOPIFY))
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_role("button", name="Check the first 1,000 rows").click()
    check = page.get_by_role("status").filter(has_text="nothing was stored")
    expect(check).to_contain_text("Amounts in ZAR besides USD")
    assert not page.evaluate(WIDE)
    page.get_by_label("Exchange rates").fill("ZAR=0.055")
    page.get_by_role("button", name="Check the first 1,000 rows").click()
    check = page.get_by_role("status").filter(has_text="nothing was stored")
    expect(check).to_contain_text("converted at 1 ZAR = 0.055 USD")
    expect(page.get_by_label("Exchange rates")).to_have_value("ZAR=0.055")
    assert not page.evaluate(WIDE)
