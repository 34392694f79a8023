"""Redemptions follow the orders: an imported order line with a customer's code
redeems it (once, whatever the case and spaces), another customer's code does not
count, limits per code and in total apply in order time, the window and the terms
decide, and re-imports or deleted orders change the result; one `offer_redeemed`
event per counted redemption."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.tenancy import tenant_context
from customers.models import Event, Order
from customers.services.imports.engine import run_records
from offers.models import OfferRecipient, OfferRedemption
from offers.redemption import redemptions_refresh
from offers.services import offer_create
from offers.tests.factories import make_order, segment_world

T0 = dt.datetime(2025, 5, 3, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(org):
    return segment_world(org, n=20)


def _offer(org, world, **data):
    base = {
        "name": "Spring 10%", "kind": "percent", "value": 10,
        "segment_ids": [world["segment"].pk], "holdout_share": 0.2,
    }  # fmt: skip
    with tenant_context(org):
        return offer_create(organization=org, data={**base, **data}, sync=True)


def _given(offer) -> list[OfferRecipient]:
    return list(
        OfferRecipient.objects.filter(offer=offer, holdout=False)
        .select_related("customer")
        .order_by("customer_id")
    )


def _step(org):
    """The `offers` pipeline step, as the pipeline runs it after an import."""
    from segmentation.pipeline import pipeline_start

    with tenant_context(org):
        return pipeline_start(organization=org, steps=["offers"], sync=True)


def test_an_order_imported_through_the_api_path_redeems_the_code(org, world):
    offer = _offer(org, world)
    with tenant_context(org):
        mine = _given(offer)[0]
        records = [
            {
                "order_id": "A-1", "customer_id": mine.customer.external_id,
                "ordered_at": "2025-05-03T10:00:00", "sku": "TEA", "amount": "36.00",
                "discount_code": f"  {mine.code.lower()} ", "discount_amount": "4.00",
            },
            {
                "order_id": "A-1", "customer_id": mine.customer.external_id,
                "ordered_at": "2025-05-03T10:00:00", "sku": "CUP", "amount": "14.00",
            },
        ]  # fmt: skip
        outcome = run_records(organization=org, kind="orders", records=records)
        assert outcome.counts.rejected == 0
    result = _step(org)
    assert result["status"] == "succeeded"
    with tenant_context(org):
        used = OfferRedemption.objects.get()
        order = Order.objects.get(external_id="A-1")
        assert (used.order_id, used.customer_id, used.recipient_id) == (
            order.pk, mine.customer_id, mine.pk,
        )  # fmt: skip
        assert used.counted and used.code == mine.code
        # the line's amount is stored net of its discount: 36 − 4 + 14
        assert used.revenue == Decimal("46") and used.discount == Decimal("4")
        events = list(Event.objects.filter(type="offer_redeemed"))
        assert len(events) == 1
        assert events[0].customer_id == mine.customer_id
        assert events[0].properties == {
            "offer_id": offer.pk,
            "order_id": order.pk,
            "code": mine.code,
        }
        first_id = used.pk

    # a re-run changes nothing and writes no second event
    _step(org)
    with tenant_context(org):
        assert list(OfferRedemption.objects.values_list("pk", flat=True)) == [first_id]
        assert Event.objects.filter(type="offer_redeemed").count() == 1

    # the order re-imported without the code: the redemption and its event go
    with tenant_context(org):
        run_records(
            organization=org,
            kind="orders",
            records=[{**records[0], "discount_code": "", "discount_amount": ""}, records[1]],
        )
        assert not Order.objects.get(external_id="A-1").lines.exclude(discount_code="").exists()
    _step(org)
    with tenant_context(org):
        assert not OfferRedemption.objects.exists()
        assert not Event.objects.filter(type="offer_redeemed").exists()


def test_an_order_imported_from_a_file_redeems_the_code_and_deleting_it_undoes_that(
    org, world, tmp_path
):
    offer = _offer(org, world)
    with tenant_context(org):
        mine = _given(offer)[1]
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,amount,discount_code\n"
        f"F-1,{mine.customer.external_id},2025-05-04 12:00,TEA,25.00,{mine.code}\n",
        encoding="utf-8",
    )
    out = StringIO()
    call_command(
        "import_data",
        "--org",
        org.slug,
        "--kind",
        "orders",
        str(path),
        stdout=out,
        stderr=StringIO(),
    )
    assert json.loads(out.getvalue().strip().splitlines()[-1])["created"] == 1
    _step(org)
    with tenant_context(org):
        used = OfferRedemption.objects.get()
        assert used.counted and used.revenue == Decimal("25")
        # no discount amount in the file: 10% of the basket
        assert used.discount == Decimal("2.5")
        Order.objects.filter(external_id="F-1").delete()
    _step(org)
    with tenant_context(org):
        assert not OfferRedemption.objects.exists()
        assert not Event.objects.filter(type="offer_redeemed").exists()


def test_a_unique_code_used_by_another_customer_does_not_count(org, world):
    offer = _offer(org, world)
    with tenant_context(org):
        mine, theirs = _given(offer)[:2]
        make_order(org, theirs.customer, code=mine.code, when=T0)
        make_order(org, None, code=mine.code, when=T0)  # a guest order
        redemptions_refresh(organization=org)
        assert not OfferRedemption.objects.exists()
        assert not Event.objects.filter(type="offer_redeemed").exists()


def test_codes_cannot_be_used_beyond_their_limit(org, world):
    offer = _offer(org, world, max_redemptions_per_code=2)
    with tenant_context(org):
        mine = _given(offer)[0]
        for day in range(3):
            make_order(org, mine.customer, code=mine.code, when=T0 + dt.timedelta(days=day))
        redemptions_refresh(organization=org)
        uses = list(OfferRedemption.objects.order_by("redeemed_at"))
    assert [u.counted for u in uses] == [True, True, False]
    assert "already been used 2 times" in uses[2].reason
    with tenant_context(org):
        assert Event.objects.filter(type="offer_redeemed").count() == 2


def test_the_offer_stops_at_its_total_limit_in_order_time(org, world):
    offer = _offer(org, world, max_redemptions_total=2)
    with tenant_context(org):
        people = _given(offer)[:3]
        # placed in the order 2, 0, 1: the third in time is the one left out
        for person, hours in zip(people, (5, 1, 3), strict=True):
            make_order(org, person.customer, code=person.code, when=T0 + dt.timedelta(hours=hours))
        redemptions_refresh(organization=org)
        counted = dict(OfferRedemption.objects.values_list("customer_id", "counted"))
        reasons = list(
            OfferRedemption.objects.filter(counted=False).values_list("reason", flat=True)
        )
    assert counted == {
        people[0].customer_id: False,
        people[1].customer_id: True,
        people[2].customer_id: True,
    }
    assert "limit of 2" in reasons[0]


def test_a_shared_code_counts_for_recipients_only(org, world):
    offer = _offer(org, world, code_mode="shared", holdout_share=0.5)
    with tenant_context(org):
        recipient = (
            OfferRecipient.objects.filter(offer=offer, holdout=False)
            .select_related("customer")
            .first()
        )
        held = (
            OfferRecipient.objects.filter(offer=offer, holdout=True)
            .select_related("customer")
            .first()
        )
        make_order(
            org, recipient.customer, code=offer.shared_code.replace("-", " ").lower(), when=T0
        )
        make_order(org, held.customer, code=offer.shared_code, when=T0)
        redemptions_refresh(organization=org)
        used = OfferRedemption.objects.get()
    assert used.customer_id == recipient.customer_id and used.code == offer.shared_code


def test_the_window_the_basket_and_the_categories_decide(org, world):
    offer = _offer(
        org, world, starts_at="2025-05-01T00:00:00Z", ends_at="2025-05-31T00:00:00Z",
        min_basket=40, categories=["Tea"], max_redemptions_per_code=10,
    )  # fmt: skip
    with tenant_context(org):
        mine = _given(offer)[0]
        c = mine.customer
        early = make_order(org, c, code=mine.code, when=dt.datetime(2025, 4, 30, tzinfo=dt.UTC))
        late = make_order(org, c, code=mine.code, when=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
        # 60 in all, but only 30 of it tea: below the minimum in the offer's categories
        small = make_order(org, c, when=T0, lines=[(30, "tea", mine.code), (30, "Cups", "")])
        good = make_order(org, c, when=T0, lines=[(45, "Tea", mine.code), (10, "Cups", "")])
        pending = make_order(org, c, code=mine.code, when=T0, amount=80, status="pending")
        redemptions_refresh(organization=org)
        rows = {r.order_id: r for r in OfferRedemption.objects.all()}
    assert "before the offer started" in rows[early.pk].reason
    assert "after the offer ended" in rows[late.pk].reason
    assert "below the minimum" in rows[small.pk].reason and not rows[small.pk].counted
    assert "pending" in rows[pending.pk].reason
    assert rows[good.pk].counted and rows[good.pk].revenue == Decimal("55")
    assert rows[good.pk].discount == Decimal("4.5")  # 10% of the tea
    assert [r.counted for r in rows.values()].count(True) == 1


def test_discounts_from_the_terms_of_each_kind(org, world):
    from customers.models import Product

    with tenant_context(org):
        Product.objects.create(organization=org, sku="MUG", price=Decimal("12.50"))
    amount = _offer(org, world, name="Five off", kind="amount", value=5, holdout_share=0)
    product = _offer(org, world, name="Free mug", kind="product", value="MUG", holdout_share=0)
    shipping = _offer(
        org, world, name="Free delivery", kind="free_shipping", value=None, holdout_share=0
    )
    with tenant_context(org):
        for offer in (amount, product, shipping):
            r = _given(offer)[0]
            make_order(org, r.customer, code=r.code, when=T0, amount=3 if offer is amount else 40)
        redemptions_refresh(organization=org)
        discounts = dict(OfferRedemption.objects.values_list("offer_id", "discount"))
    assert discounts == {amount.pk: Decimal("3"), product.pk: Decimal("12.5"), shipping.pk: 0}


def test_changing_the_limits_judges_the_uses_again(org, world):
    from offers.services import offer_update

    offer = _offer(org, world)
    with tenant_context(org):
        mine = _given(offer)[0]
        make_order(org, mine.customer, code=mine.code, when=T0)
        make_order(org, mine.customer, code=mine.code, when=T0 + dt.timedelta(days=1))
        redemptions_refresh(organization=org)
        assert OfferRedemption.objects.filter(counted=True).count() == 1
        offer_update(organization=org, offer=offer, data={"max_redemptions_per_code": 2})
        assert OfferRedemption.objects.filter(counted=True).count() == 2
        assert Event.objects.filter(type="offer_redeemed").count() == 2


def test_the_step_is_cheap_without_offers(org, django_assert_max_num_queries):
    from offers.tasks import offers_refresh

    with tenant_context(org), django_assert_max_num_queries(2):
        result = offers_refresh.run(organization_id=org.pk, job_id=None)
    assert result["offers"] == 0


def test_an_order_deleted_by_a_person_stops_redeeming(org, world, owner):
    from django.db import connection

    from customers.services.orders import order_delete

    offer = _offer(org, world)
    with tenant_context(org):
        mine = _given(offer)[0]
        order = make_order(org, mine.customer, code=mine.code, when=T0)
        redemptions_refresh(organization=org)
        assert OfferRedemption.objects.filter(order_id=order.pk).exists()
        order_delete(order_id=order.pk, actor=owner)
        connection.check_constraints()  # the raw delete leaves no broken reference
    _step(org)
    with tenant_context(org):
        assert not OfferRedemption.objects.exists()
        assert not Event.objects.filter(type="offer_redeemed").exists()
