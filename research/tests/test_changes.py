"""What changed this month (research/changes.py) on planted data: the numbers in each
sentence are the planted ones, flat things are not reported, and the dashboard panel
and the API read the stored list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.models import Customer, Order, OrderLine, Product
from research import changes
from research.models import ResearchRun, Theme

AS_OF = dt.date(2026, 6, 30)


def _at(days_before: int, hour: int = 12) -> dt.datetime:
    """A moment `days_before` days before AS_OF (0: AS_OF itself), UTC."""
    day = AS_OF - dt.timedelta(days=days_before)
    return dt.datetime.combine(day, dt.time(hour, 0), tzinfo=dt.UTC)


class Shop:
    def __init__(self, organization):
        self.org = organization
        self.n = 0

    def order(self, when, lines=(), *, customer=None, channel="web", is_return=False):
        self.n += 1
        order = Order.objects.create(
            organization=self.org,
            external_id=f"o{self.n}",
            customer=customer,
            ordered_at=when,
            channel=channel,
            is_return=is_return,
            total=sum((Decimal(a) for _, _, a in lines), Decimal(0)),
        )
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    organization=self.org,
                    order=order,
                    sku=sku,
                    product_name=sku,
                    category=Product.objects.get(sku=sku).category,
                    quantity=qty,
                    amount=Decimal(amount),
                )
                for sku, qty, amount in lines
            ]
        )
        return order

    def sales(self, sku, *, prev_lines, last_lines, qty, price):
        """`prev_lines` orders in the 30 days before the last 30, `last_lines` in the
        last 30, each of `qty` units (written in bulk: hundreds of orders)."""
        category = Product.objects.get(sku=sku).category
        days = [30 + i % 30 for i in range(prev_lines)] + [i % 30 for i in range(last_lines)]
        orders = []
        for d in days:
            self.n += 1
            orders.append(
                Order(
                    organization=self.org,
                    external_id=f"o{self.n}",
                    ordered_at=_at(d),
                    total=qty * price,
                )
            )
        orders = Order.objects.bulk_create(orders)
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    organization=self.org,
                    order=o,
                    sku=sku,
                    product_name=sku,
                    category=category,
                    quantity=qty,
                    amount=qty * price,
                )
                for o in orders
            ]
        )


@pytest.fixture
def shop(org):
    with tenant_context(org):
        for sku, name, category, merch in (
            ("CAN", "Candles", "Home", True),
            ("FLAT", "Tea towels", "Kitchen", True),
            ("MUG", "Mugs", "Kitchen", True),
            ("POST", "Postage", "", False),
        ):
            Product.objects.create(
                organization=org, sku=sku, name=name, category=category, merchandise=merch
            )
        s = Shop(org)
        s.sales("CAN", prev_lines=20, last_lines=40, qty=6, price=3)  # 120 → 240 units
        s.sales("FLAT", prev_lines=100, last_lines=100, qty=2, price=5)  # flat
        s.sales("MUG", prev_lines=30, last_lines=10, qty=2, price=4)  # 60 → 20 units
        s.sales("POST", prev_lines=5, last_lines=60, qty=1, price=4)  # not merchandise
        # sold long before the windows: not counted
        s.order(_at(90), [("FLAT", 500, 2500)])
        yield s


def test_a_product_whose_sales_doubled_is_reported_up_with_its_numbers(shop, org):
    with tenant_context(org):
        items = {i["evidence"]["sku"]: i for i in changes.product_changes(as_of=AS_OF)}
        candles = Product.objects.get(sku="CAN")
    assert set(items) == {"CAN", "MUG"}  # tea towels flat, postage not merchandise
    up = items["CAN"]
    assert up["direction"] == "up"
    assert up["sentence"] == "Sales of Candles rose 100% in the last 30 days (120 → 240 units)."
    assert up["evidence"]["units_prev_30d"] == 120
    assert up["evidence"]["units_last_30d"] == 240
    assert up["evidence"]["revenue_last_30d"] == 720
    assert up["url"] == reverse("customers:product", args=[candles.pk])
    down = items["MUG"]
    assert down["direction"] == "down"
    assert down["sentence"] == "Sales of Mugs fell 67% in the last 30 days (60 → 20 units)."


def test_returns_are_netted_and_a_small_seller_is_not_reported(shop, org):
    with tenant_context(org):
        Product.objects.create(organization=org, sku="TINY", name="Tiny", category="Home")
        shop.sales("TINY", prev_lines=1, last_lines=3, qty=2, price=1)  # 2 → 6 units: noise
        # half of the candles bought in the last 30 days came back
        for i in range(20):
            shop.order(_at(i), [("CAN", 6, 18)], is_return=True)
        items = {i["evidence"]["sku"]: i for i in changes.product_changes(as_of=AS_OF)}
    assert "TINY" not in items
    assert "CAN" not in items  # 240 − 120 returned = 120: flat


def test_a_rising_forecast_is_added_to_the_product_sentence(shop, org):
    from predictions.models import PredictionRun, ProductForecast

    with tenant_context(org):
        run = PredictionRun.objects.create(
            organization=org, as_of=AS_OF, method="heuristic", is_live=True
        )
        ProductForecast.objects.create(
            organization=org,
            run=run,
            sku="CAN",
            name="Candles",
            total_4w=300,
            lower_4w=250,
            upper_4w=350,
            trend="rising",
            method="ets",
        )
        item = next(i for i in changes.product_changes(as_of=AS_OF) if i["kind"] == "product")
    assert item["evidence"]["sku"] == "CAN"
    assert item["sentence"].endswith(
        "Expected to keep rising: forecast 300 units in the next 4 weeks."
    )
    assert item["evidence"]["forecast_next_4w"] == 300


def test_categories_follow_their_products(shop, org):
    with tenant_context(org):
        items = {i["evidence"]["category"]: i for i in changes.category_changes(as_of=AS_OF)}
    # Home is the candles (doubled); Kitchen: 260 → 220 units, within the usual range
    assert set(items) == {"Home"}
    assert items["Home"]["sentence"].startswith("Sales of the Home category rose 100%")
    assert "category=Home" in items["Home"]["url"]


def test_a_channel_that_brought_new_customers(org):
    with tenant_context(org):
        Product.objects.create(organization=org, sku="CAN", name="Candles", category="Home")
        shop = Shop(org)
        n = 0
        for channel, prev, last in (("Instagram", 0, 12), ("web", 10, 11), ("market", 20, 6)):
            for days, count in ((45, prev), (10, last)):
                for _ in range(count):
                    n += 1
                    when = _at(days)
                    customer = Customer.objects.create(
                        organization=org,
                        external_id=f"c{n}",
                        first_order_at=when,
                        last_order_at=when,
                        orders_count=1,
                    )
                    shop.order(when, [("CAN", 1, 3)], customer=customer, channel=channel)
        # a returning customer's later order is not a new customer of its channel
        old = Customer.objects.create(
            organization=org, external_id="old", first_order_at=_at(200), orders_count=2
        )
        shop.order(_at(200), [("CAN", 1, 3)], customer=old, channel="web")
        for _ in range(5):
            shop.order(_at(5), [("CAN", 1, 3)], customer=old, channel="Instagram")
        items = {i["evidence"]["channel"]: i for i in changes.source_changes(as_of=AS_OF)}
    assert set(items) == {"Instagram", "market"}
    new = items["Instagram"]
    assert new["direction"] == "new"
    assert new["evidence"]["new_customers_last_30d"] == 12
    assert new["sentence"] == (
        "Instagram brought 12 new customers in the last 30 days, and none in the 30 days before."
    )
    assert items["market"]["direction"] == "down"
    assert "down 70% from 20" in items["market"]["sentence"]


def _segments(org):
    from segmentation.models import Segment, SegmentationRun

    earlier = SegmentationRun.objects.create(
        organization=org,
        as_of=AS_OF - dt.timedelta(days=30),
        n_customers=1000,
        created_at=_at(30),
    )
    live = SegmentationRun.objects.create(
        organization=org, as_of=AS_OF, n_customers=1000, is_live=True, created_at=_at(0)
    )
    shrinking = Segment.objects.create(
        organization=org, kind="cluster", name="Fading Small-Basket Shoppers", key="fading"
    )
    steady = Segment.objects.create(
        organization=org, kind="cluster", name="Loyal Regulars", key="loyal"
    )
    earlier.summary = {
        "segments": {str(shrinking.pk): {"size": 300}, str(steady.pk): {"size": 200}}
    }
    live.summary = {"segments": {str(shrinking.pk): {"size": 150}, str(steady.pk): {"size": 210}}}
    earlier.save()
    live.save()
    return shrinking, steady


def test_a_shrinking_segment(org):
    with tenant_context(org):
        shrinking, steady = _segments(org)
        items = changes.segment_changes(as_of=AS_OF)
    assert len(items) == 1
    item = items[0]
    assert item["direction"] == "down"
    assert item["evidence"]["segment_id"] == shrinking.pk
    assert item["sentence"] == (
        "Fading Small-Basket Shoppers shrank from 300 to 150 customers (−50%) since 31 May 2026."
    )
    assert item["url"] == reverse("segmentation:segment_detail", args=[shrinking.pk])


def _themes(org):
    run = ResearchRun.objects.create(organization=org, as_of=AS_OF)
    growing = Theme.objects.create(
        organization=org,
        run=run,
        label="delivery late",
        size=40,
        sentiment=-0.5,
        trend={"last_30d": 24, "prev_30d": 6, "change": 3.0, "trend": "growing"},
    )
    Theme.objects.create(
        organization=org,
        run=run,
        label="lovely packaging",
        position=1,
        size=30,
        sentiment=0.6,
        trend={"last_30d": 10, "prev_30d": 11, "change": -0.09, "trend": "steady"},
    )
    return run, growing


def test_a_growing_theme(org):
    with tenant_context(org):
        run, growing = _themes(org)
        items = changes.theme_changes(as_of=AS_OF, run=run)
    assert len(items) == 1
    item = items[0]
    assert item["direction"] == "up"
    assert item["evidence"]["theme_id"] == growing.pk
    assert item["sentence"] == (
        "More customers complain about “delivery late”: 24 times in the last 30 days, "
        "up from 6 in the 30 days before."
    )


def test_compute_changes_keeps_the_heaviest_few_of_each_kind(shop, org):
    with tenant_context(org):
        _segments(org)
        run, _ = _themes(org)
    items = changes.compute_changes(organization=org, as_of=AS_OF, run=run)
    assert 1 <= len(items) <= changes.MAX_ITEMS
    weights = [i["weight"] for i in items]
    assert weights == sorted(weights, reverse=True)
    kinds = [i["kind"] for i in items]
    assert {"product", "segment", "theme"} <= set(kinds)
    for item in items:
        assert set(item) == {"kind", "direction", "title", "sentence", "url", "evidence", "weight"}
        assert item["direction"] in ("up", "down", "new")


def test_nothing_is_reported_for_an_organisation_without_data(org):
    assert changes.compute_changes(organization=org, as_of=AS_OF) == []


def _run(org, items):
    with tenant_context(org):
        return ResearchRun.objects.create(organization=org, as_of=AS_OF, changes=items)


CHANGES = [
    {
        "kind": "product",
        "direction": "up",
        "title": "Selling more: Candles",
        "sentence": "Sales of Candles rose 100% in the last 30 days (120 → 240 units).",
        "url": "/customers/products/1/",
        "evidence": {"units_last_30d": 240, "units_prev_30d": 120},
        "weight": 0.3,
    },
    {
        "kind": "theme",
        "direction": "down",
        "title": "Complaints about “delivery late” falling",
        "sentence": "Fewer customers complain about “delivery late”.",
        "url": None,
        "evidence": {},
        "weight": 0.1,
    },
]


def test_the_dashboard_shows_the_stored_sentences_with_markers_and_links(org, owner_client):
    _run(org, CHANGES)
    page = owner_client.get(reverse("core:dashboard")).content.decode()
    assert "What changed this month" in page
    assert "Sales of Candles rose 100% in the last 30 days (120 → 240 units)." in page
    assert ">Up</span>" in page and ">Down</span>" in page  # words, not colour only
    assert 'href="/customers/products/1/"' in page and "See why" in page
    assert reverse("research:overview") in page


def test_the_panel_says_so_when_nothing_changed_and_is_absent_before_any_run(org, owner_client):
    page = owner_client.get(reverse("core:dashboard")).content.decode()
    assert "What changed this month" not in page
    _run(org, [])
    page = owner_client.get(reverse("core:dashboard")).content.decode()
    assert "Nothing notable changed in the last 30 days up to 30 Jun 2026" in page


def test_the_panel_works_for_a_request_without_a_membership(org):
    _run(org, CHANGES)
    request = RequestFactory().get("/")
    request.organization = org
    panel = changes.dashboard_panel(request=request)
    assert panel["template"] == "research/_changes_panel.html"
    assert panel["context"]["changes"][0]["title"] == "Selling more: Candles"


def test_the_api_reads_the_latest_run(org, api_read):
    empty = api_read.get("/api/v1/research/changes/")
    assert empty.status_code == 200
    assert empty.json() == {"as_of": None, "computed_at": None, "changes": []}
    _run(org, CHANGES)
    body = api_read.get("/api/v1/research/changes/").json()
    assert body["as_of"] == "2026-06-30"
    assert body["computed_at"]
    assert [c["title"] for c in body["changes"]] == [c["title"] for c in CHANGES]
    assert body["changes"][0]["evidence"] == {"units_last_30d": 240, "units_prev_30d": 120}


def test_another_organisations_changes_are_not_shown(org, other_org):
    from rest_framework.test import APIClient

    from accounts.tests.factories import make_api_key

    _run(org, CHANGES)
    _, raw = make_api_key(other_org, "read")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert other.get("/api/v1/research/changes/").json()["changes"] == []
    request = RequestFactory().get("/")
    request.organization = other_org
    assert changes.dashboard_panel(request=request) is None
