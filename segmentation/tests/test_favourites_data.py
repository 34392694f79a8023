"""Postage, fees and hidden products never reach the favourites (issue 9): the
segments step reads only merchandise the owner has not hidden."""

from __future__ import annotations

import datetime as dt

import pytest

from customers.models import Product
from customers.services.imports import run_file
from segmentation.services.segments import load_data

pytestmark = pytest.mark.django_db


def test_postage_and_hidden_products_are_left_out_of_the_product_lines(in_org, tmp_path):
    path = tmp_path / "orders.csv"
    rows = ["order_id,customer_id,ordered_at,sku,product_name,quantity,unit_price"]
    for i in range(12):
        rows.append(
            f"{i},c{i},2024-01-{i + 2:02d},85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55"
        )
        rows.append(f"{i},c{i},2024-01-{i + 2:02d},POST,POSTAGE,1,18.00")
        rows.append(f"{i},c{i},2024-01-{i + 2:02d},MUG,Mug,1,4.00")
    path.write_text("\n".join(rows) + "\n")
    run_file(organization=in_org, path=str(path), kind="orders")
    Product.objects.filter(sku="MUG").update(hidden=True)

    data = load_data(organization_id=in_org.pk, as_of=dt.date(2024, 1, 31))
    assert set(data.product_lines["product"]) == {"WHITE HANGING HEART T-LIGHT HOLDER"}
    # the lines still count for the customers' spend and orders
    assert len(data.lines) == 36
