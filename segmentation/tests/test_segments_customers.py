"""What the customers app shows of segments: the API's `segment` and `segments`
fields (CONTRACT.md), the customer page's Segment panel with history, the
`?segment=` filter, and erasure of a person's segment history."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from segmentation.models import Segment, SegmentKind, SegmentMembership
from segmentation.services.segments import segmentation_run
from segmentation.tests.factories import planted_run


@pytest.fixture
def live(org):
    run, truth = planted_run(org)
    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
        customer_id = segment.memberships.filter(run=run).first().customer_id
    return run, segment, customer_id


def test_customers_api_carries_the_live_segment(api_read, live):
    run, segment, customer_id = live
    body = api_read.get(f"/api/v1/customers/{customer_id}/").json()
    assert body["segment"] == {"id": segment.pk, "name": segment.name}
    # the segment, perhaps one of its sub-segments (drill-down), and an RFM group
    kinds = sorted(s["kind"] for s in body["segments"])
    assert kinds in (["cluster", "rfm"], ["cluster", "cluster", "rfm"])
    assert segment.pk in {s["id"] for s in body["segments"]}
    listing = api_read.get("/api/v1/customers/?page_size=5").json()["results"]
    assert all(c["segment"] is not None for c in listing if c["orders_count"])


def test_customers_without_orders_have_no_segment(api_read, live, org):
    from customers.models import Customer

    with tenant_context(org):
        lonely = Customer.objects.create(external_id="no-orders", email="n@example.com")
    body = api_read.get(f"/api/v1/customers/{lonely.pk}/").json()
    assert body["segment"] is None and body["segments"] == []


def test_customer_page_shows_the_segment_and_its_history(owner_client, live, org):
    run, segment, customer_id = live
    with tenant_context(org):
        segmentation_run(organization=org)
    html = owner_client.get(f"/customers/{customer_id}/").content.decode()
    assert 'id="panel-segment"' in html
    assert f'href="/segments/{segment.pk}/"' in html
    assert "Segment over time" in html


def test_customer_list_filters_by_segment(api_read, live):
    run, segment, _ = live
    body = api_read.get(f"/api/v1/customers/?segment={segment.pk}&page_size=1000").json()
    assert len(body["results"]) == segment.size
    assert api_read.get("/api/v1/customers/?segment=999999").json()["results"] == []
    assert api_read.get("/api/v1/customers/?segment=abc").json()["results"] == []


def test_erasure_removes_the_persons_segment_history(live, org):
    from customers.models import Customer
    from customers.services.privacy import customer_erase

    _, _, customer_id = live
    with tenant_context(org):
        customer_erase(customer=Customer.objects.get(pk=customer_id), sync_files=True)
        assert not SegmentMembership.objects.filter(customer_id=customer_id).exists()
