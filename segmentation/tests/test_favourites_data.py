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


def test_segment_page_shows_favourites_with_their_lift(owner_client, org):
    from accounts.tenancy import tenant_context
    from segmentation.models import Segment, SegmentKind
    from segmentation.tests.factories import planted_run

    planted_run(org)
    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
        segment.profile = {
            **segment.profile,
            "distinctive_products": [
                {"name": "Glue", "buyers": 30, "buyers_share": 0.6, "base_buyers_share": 0.2,
                 "lift": 3.0, "index": 300.0, "amount": 150.0},
            ],
            "top_products": [
                {"name": "Bag", "buyers": 50, "buyers_share": 1.0, "base_buyers_share": 1.0,
                 "lift": 1.0, "index": 100.0, "amount": 1000.0},
            ],
        }  # fmt: skip
        segment.save(update_fields=["profile"])
    html = owner_client.get(f"/segments/{segment.pk}/").content.decode()
    assert "Favourite products" in html
    assert "Glue: 3.0× as likely as the average customer" in html
    assert "Most bought" in html and "Bag" in html
