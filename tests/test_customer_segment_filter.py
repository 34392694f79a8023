"""The customers list filters by a segment chosen by name, and never calls a shop
with customers empty (issue 9: typing a segment's name showed "No customers yet.
Import a file" in a shop with 445 customers)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.tests.factories import CustomerFactory
from segmentation.models import SegmentMembership
from segmentation.tests.factories import SegmentationRunFactory, SegmentFactory


@pytest.fixture
def shop(org):
    with tenant_context(org):
        loyal_person = CustomerFactory(first_name="Loyal", last_name="Person")
        other = CustomerFactory(first_name="Other", last_name="Person")
        run = SegmentationRunFactory(organization=org, is_live=True, as_of=dt.date(2024, 6, 30))
        loyal = SegmentFactory(
            organization=org, name="Loyal regulars", is_active=True, first_run=run, last_run=run
        )
        SegmentFactory(
            organization=org, name="One-timers", is_active=True, first_run=run, last_run=run
        )
        SegmentMembership.objects.create(
            organization=org, run=run, segment=loyal, customer=loyal_person
        )
    return {"loyal": loyal, "member": loyal_person, "other": other}


def test_the_segment_filter_is_a_choice_of_live_segment_names(owner_client, shop):
    page = owner_client.get(reverse("customers:list")).content.decode()
    assert '<select id="f-segment" name="segment">' in page
    assert f'<option value="{shop["loyal"].pk}"' in page
    assert "Loyal regulars" in page and "One-timers" in page

    chosen = owner_client.get(reverse("customers:list"), {"segment": shop["loyal"].pk})
    body = chosen.content.decode()
    assert shop["member"].external_id in body
    assert shop["other"].external_id not in body


def test_a_typed_segment_name_filters_too(owner_client, shop):
    body = owner_client.get(reverse("customers:list"), {"segment": "loyal regulars"}).content
    assert shop["member"].external_id in body.decode()
    assert shop["other"].external_id not in body.decode()


def test_no_match_is_not_called_an_empty_shop(owner_client, shop):
    body = owner_client.get(reverse("customers:list"), {"segment": "Nobody"}).content.decode()
    assert "No customers yet" not in body
    assert "No customers match these filters" in body
    assert f'href="{reverse("customers:list")}">Clear filters' in body


def test_an_empty_shop_is_told_to_import(owner_client, org):
    body = owner_client.get(reverse("customers:list")).content.decode()
    assert "No customers yet" in body
