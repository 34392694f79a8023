"""Conversions (last touch, within the campaign's window, idempotent), bounces and
complaints, checked on hand-made cases."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import pytest

from accounts.tenancy import tenant_context
from campaigns import tracking
from campaigns.models import Campaign, Delivery, DeliveryStatus, Variant
from campaigns.tracking import Touch, assign_orders
from customers.models import ConsentChange, ConsentVia, Customer, Event, Order, OrderStatus

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def customer(org, external_id="c-1"):
    with tenant_context(org):
        return Customer.objects.create(
            organization=org,
            external_id=external_id,
            email=f"{external_id}@example.com",
            accepts_email=True,
        )


def delivery(org, person, *, window=5, opened=None, clicked=None, name="Spring"):
    with tenant_context(org):
        campaign = Campaign.objects.create(
            organization=org, name=name, conversion_window_days=window
        )
        variant = Variant.objects.create(organization=org, campaign=campaign, name="A")
        return Delivery.objects.create(
            organization=org,
            campaign=campaign,
            variant=variant,
            customer=person,
            channel="email",
            status=DeliveryStatus.SENT,
            to_address=person.email,
            token=secrets.token_hex(16),
            sent_at=T0 - DAY,
            opened_at=opened,
            clicked_at=clicked,
        )


def order(org, person, at, total="50.00", **fields):
    with tenant_context(org):
        return Order.objects.create(
            organization=org,
            external_id=f"o-{secrets.token_hex(4)}",
            customer=person,
            ordered_at=at,
            total=Decimal(total),
            **fields,
        )


def reload(org, d):
    with tenant_context(org):
        return Delivery.objects.get(pk=d.pk)


def converted_events(org, person):
    with tenant_context(org):
        return sorted(
            (e.properties["campaign_id"], e.properties["order_id"], e.properties["revenue"])
            for e in Event.objects.filter(customer=person, type="converted")
        )


def run(org, **kwargs) -> int:
    with tenant_context(org):
        return tracking.attribute_conversions(organization=org, **kwargs)


# --- the rule, by hand ------------------------------------------------------------------


def test_assign_orders_last_touch_within_window():
    touches = [
        Touch(1, 10, T0, 10),  # opened first, long window
        Touch(2, 10, T0 + DAY, 1),  # clicked a day later, one-day window
    ]
    orders = [
        (100, 10, T0 - DAY),  # before any touch
        (101, 10, T0 + 12 * dt.timedelta(hours=1)),  # only touch 1 so far
        (102, 10, T0 + 36 * dt.timedelta(hours=1)),  # both cover it: the newer wins
        (103, 10, T0 + 3 * DAY),  # touch 2's window has passed: touch 1 still covers
        (104, 10, T0 + 11 * DAY),  # outside every window
        (105, 11, T0 + DAY),  # another customer
    ]
    assert assign_orders(touches, orders) == {101: 1, 102: 2, 103: 1}


# --- attribution on the database ------------------------------------------------------------


def test_conversion_within_window_not_outside_and_revenue_summed(org):
    person = customer(org)
    d = delivery(org, person, window=5, opened=T0)
    inside1 = order(org, person, T0 + 2 * DAY, "50.00")
    inside2 = order(org, person, T0 + 4 * DAY, "20.50")
    order(org, person, T0 + 6 * DAY, "999.00")  # after the window
    order(org, person, T0 - DAY, "999.00")  # before the open
    order(org, person, T0 + DAY, "-30.00", is_return=True)  # a return is no purchase
    order(org, person, T0 + DAY, "999.00", status=OrderStatus.CANCELLED)
    order(org, person, T0 + DAY, "999.00", status=OrderStatus.PENDING)

    assert run(org) == 1
    d = reload(org, d)
    assert d.converted_at == T0 + 2 * DAY
    assert d.revenue == Decimal("70.50")
    assert converted_events(org, person) == [
        (d.campaign_id, inside1.pk, "50.00"),
        (d.campaign_id, inside2.pk, "20.50"),
    ]
    with tenant_context(org):
        event = Event.objects.filter(customer=person, type="converted").first()
        assert event.properties["variant_id"] == d.variant_id

    # running again changes nothing
    assert run(org) == 0
    assert run(org, since=T0) == 0
    assert reload(org, d).revenue == Decimal("70.50")
    assert len(converted_events(org, person)) == 2


def test_no_touch_no_conversion(org):
    person = customer(org)
    d = delivery(org, person)  # sent, never opened or clicked
    order(org, person, T0 + DAY)
    assert run(org) == 0
    assert reload(org, d).converted_at is None
    assert converted_events(org, person) == []


def test_the_last_touch_before_the_order_gets_it(org):
    person = customer(org)
    first = delivery(org, person, window=10, opened=T0, name="First")
    second = delivery(org, person, window=10, clicked=T0 + 2 * DAY, name="Second")
    early = order(org, person, T0 + DAY, "10.00")  # only the first was touched yet
    late = order(org, person, T0 + 3 * DAY, "40.00")  # both cover it: the second is newer
    assert run(org) == 2
    first, second = reload(org, first), reload(org, second)
    assert (first.converted_at, first.revenue) == (early.ordered_at, Decimal("10.00"))
    assert (second.converted_at, second.revenue) == (late.ordered_at, Decimal("40.00"))
    assert converted_events(org, person) == sorted(
        [(first.campaign_id, early.pk, "10.00"), (second.campaign_id, late.pk, "40.00")]
    )


def test_a_later_click_on_another_link_moves_the_touch(org):
    from campaigns.links import tracked_link_for

    person = customer(org)
    d = delivery(org, person, window=2)
    with tenant_context(org):
        first = tracked_link_for(d.campaign, "https://shop.example/a")
        second = tracked_link_for(d.campaign, "https://shop.example/b")
        assert tracking.record_click(d, first, at=T0) is True
        assert tracking.record_click(d, second, at=T0 + 5 * DAY) is True
        assert tracking.record_click(d, second, at=T0 + 6 * DAY) is False  # once per link
    d = reload(org, d)
    assert (d.opened_at, d.clicked_at) == (T0, T0)  # the first open and click
    bought = order(org, person, T0 + 6 * DAY, "12.00")  # 6 days after the first click
    assert run(org, since=T0 + 6 * DAY) == 1
    d = reload(org, d)
    assert d.converted_at == bought.ordered_at and d.revenue == Decimal("12.00")


def test_a_refund_later_takes_the_conversion_back(org):
    person = customer(org)
    d = delivery(org, person, opened=T0)
    bought = order(org, person, T0 + DAY, "25.00")
    assert run(org) == 1
    with tenant_context(org):
        Order.objects.filter(pk=bought.pk).update(
            status=OrderStatus.REFUNDED, updated_at=T0 + 5 * DAY
        )
    assert run(org, since=T0 + 4 * DAY) == 1
    d = reload(org, d)
    assert d.converted_at is None and d.revenue == 0
    assert converted_events(org, person) == []


def test_other_currency_converts_without_revenue(org):
    person = customer(org)
    d = delivery(org, person, opened=T0)
    order(org, person, T0 + DAY, "80.00", currency="JPY")
    run(org)
    d = reload(org, d)
    assert d.converted_at == T0 + DAY and d.revenue == 0


def test_attribution_stays_in_its_organisation(org, other_org):
    person_a = customer(org)
    person_b = customer(other_org)  # the same id in another shop
    delivery(org, person_a, opened=T0)
    d_b = delivery(other_org, person_b)  # never opened
    order(other_org, person_b, T0 + DAY)
    assert run(org) == 0
    assert run(other_org) == 0
    assert reload(other_org, d_b).converted_at is None
    with tenant_context(org), pytest.raises(Exception, match="organisation"):
        tracking.attribute_conversions(organization=other_org)


# --- bounces and complaints -----------------------------------------------------------------


def history(org, person):
    with tenant_context(org):
        return list(
            ConsentChange.objects.filter(customer=person).values_list("channel", "granted", "via")
        )


def accepts_email(org, person) -> bool:
    with tenant_context(org):
        return Customer.objects.get(pk=person.pk).accepts_email


def events(org, person, kind):
    with tenant_context(org):
        return list(Event.objects.filter(customer=person, type=kind))


def test_hard_bounce_suppresses_and_is_recorded_once(org):
    person = customer(org)
    d = delivery(org, person)
    with tenant_context(org):
        assert tracking.record_bounce(d, hard=True, reason="550 5.1.1 no such user") is True
        assert tracking.record_bounce(d, hard=True, reason="550 again") is False
    assert reload(org, d).status == DeliveryStatus.BOUNCED
    assert accepts_email(org, person) is False
    assert history(org, person) == [("email", False, ConsentVia.SYSTEM)]
    (event,) = events(org, person, "message_bounced")
    assert event.properties["hard"] is True
    assert event.properties["campaign_id"] == d.campaign_id


def test_soft_bounces_suppress_only_at_the_third(org):
    person = customer(org)
    with tenant_context(org):
        for i in range(2):
            tracking.record_bounce(
                delivery(org, person, name=f"c{i}"), hard=False, reason="452 mailbox full"
            )
        assert accepts_email(org, person) is True
        tracking.record_bounce(delivery(org, person, name="c3"), hard=False, reason="452")
    assert accepts_email(org, person) is False
    assert len(events(org, person, "message_bounced")) == 3


def test_complaint_suppresses_once(org):
    person = customer(org)
    d = delivery(org, person)
    with tenant_context(org):
        assert tracking.record_complaint(d) is True
        assert tracking.record_complaint(d) is False
    assert accepts_email(org, person) is False
    assert history(org, person) == [("email", False, ConsentVia.SYSTEM)]
    assert len(events(org, person, "message_complained")) == 1
