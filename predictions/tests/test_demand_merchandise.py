"""Demand leaves out postage, fees and hidden products (issue 9)."""

from __future__ import annotations

import datetime as dt

import pytest

from customers.models import Product
from customers.services.imports import run_file
from predictions.models import PredictionRun, ProductForecast, Trend
from predictions.selectors import product_forecasts
from predictions.services import prediction_load_sales

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(in_org, tmp_path):
    path = tmp_path / "orders.csv"
    rows = ["order_id,customer_id,ordered_at,sku,product_name,quantity,unit_price"]
    for i in range(20):
        day = f"2024-01-{i + 1:02d}"
        rows.append(f"{i},c{i},{day},85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55")
        rows.append(f"{i},c{i},{day},POST,POSTAGE,1,18.00")
        rows.append(f"{i},c{i},{day},23574,PACKING CHARGE,1,2.00")
        rows.append(f"{i},c{i},{day},MUG,Mug,2,4.00")
    path.write_text("\n".join(rows) + "\n")
    run_file(organization=in_org, path=str(path), kind="orders")
    Product.objects.filter(sku="MUG").update(hidden=True)
    return in_org


def test_demand_reads_only_merchandise_the_owner_has_not_hidden(sales):
    frame = prediction_load_sales(organization_id=sales.pk, as_of=dt.date(2024, 1, 31))
    assert set(frame["sku"]) == {"85123A"}
    assert frame["units"].sum() == 120


def test_a_product_hidden_after_the_run_leaves_the_demand_list(sales):
    run = PredictionRun.objects.create(as_of=dt.date(2024, 1, 31), method="test", is_live=True)
    for sku in ("85123A", "MUG", "POST"):
        ProductForecast.objects.create(
            run=run,
            product=Product.objects.get(sku=sku),
            sku=sku,
            total_4w=10,
            lower_4w=5,
            upper_4w=15,
            trend=Trend.STEADY,
            method="test",
        )
    assert [f.sku for f in product_forecasts(run=run)] == ["85123A"]
