"""The event types Segmenta writes itself (messages, conversions, offers, loyalty,
surveys) cannot be imported — a file could otherwise fake a conversion or fire a
"reached Gold" automation — and they do not move the organisation's latest data
date. The customers API shows each customer's loyalty tier and points."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from customers.models import SEGMENTA_EVENT_TYPES, Event
from customers.selectors import latest_data_date
from customers.services.imports import run_records

from .factories import CustomerFactory, OrderLineFactory

pytestmark = pytest.mark.django_db


def test_imports_refuse_the_types_segmenta_writes(org):
    with tenant_context(org):
        outcome = run_records(
            organization=org,
            kind="events",
            records=[
                {"customer_id": "c1", "type": "page_view", "occurred_at": "2026-01-02"},
                {"customer_id": "c1", "type": "tier_changed", "occurred_at": "2026-01-02"},
                {"customer_id": "c1", "type": "Converted", "occurred_at": "2026-01-02"},
            ],
        )
        assert outcome.counts.created == 1 and outcome.counts.rejected == 2
        assert {e["field"] for e in outcome.errors} == {"type"}
        assert "Segmenta writes itself" in outcome.errors[0]["message"]
        assert list(Event.objects.values_list("type", flat=True)) == ["page_view"]


def test_segmentas_own_events_do_not_move_the_latest_data_date(org):
    with tenant_context(org):
        line = OrderLineFactory(order__customer=CustomerFactory())
        newest = latest_data_date()
        assert newest == line.order.ordered_at
        for kind in sorted(SEGMENTA_EVENT_TYPES):
            Event.objects.create(
                organization=org,
                customer=line.order.customer,
                type=kind,
                occurred_at=newest + dt.timedelta(days=30),
            )
        assert latest_data_date() == newest
        Event.objects.create(
            organization=org,
            customer=line.order.customer,
            type="page_view",
            occurred_at=newest + dt.timedelta(days=1),
        )
        assert latest_data_date() == newest + dt.timedelta(days=1)
        assert newest + dt.timedelta(days=1) <= timezone.now() + dt.timedelta(days=1)


def test_the_customers_api_shows_loyalty(org, api):
    from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier

    with tenant_context(org):
        ada, bob = CustomerFactory(), CustomerFactory()
        assert api.get(f"/api/v1/customers/{ada.pk}/").json()["loyalty"] is None
        program = LoyaltyProgram.objects.create(organization=org)
        gold = LoyaltyTier.objects.create(
            organization=org, program=program, name="Gold", threshold=100
        )
        LoyaltyAccount.objects.create(organization=org, customer=ada, tier=gold, points=240)
    assert api.get(f"/api/v1/customers/{ada.pk}/").json()["loyalty"] == {
        "tier": "Gold",
        "points": 240,
    }
    listed = {c["id"]: c["loyalty"] for c in api.get("/api/v1/customers/").json()["results"]}
    assert listed == {ada.pk: {"tier": "Gold", "points": 240}, bob.pk: None}
