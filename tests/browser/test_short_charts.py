"""A chart with less than a month of data: its month axis reads as months
("Mar 2026"), not hours of one day (issue 14, item 11)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from customers.models import Product
from customers.services.imports import run_file

from .test_import_wizard import _log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_month_of_orders_gives_a_month_axis(site, new_context, owner, org, tmp_path):
    orders = tmp_path / "o.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        "A1,c1,2026-03-02 10:00,S1,1,10\nA2,c2,2026-03-20 11:00,S1,2,10\n"
    )
    with tenant_context(org):
        run_file(organization=org, path=str(orders), kind="orders")
        product = Product.objects.get(sku="S1")
    page = new_context().new_page()
    _log_in(page, site, owner)
    for path, chart in (
        ("/", "#revenue-chart"),
        (f"/customers/products/{product.pk}/", "#sales-chart"),
    ):
        page.goto(f"{site}{path}")
        ticks = page.locator(f"{chart} .xtick text")
        expect(ticks.first).to_be_visible()
        labels = ticks.all_text_contents()
        assert labels and all(re.fullmatch(r"[A-Z][a-z]{2} \d{4}", t) for t in labels), labels
