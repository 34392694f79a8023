"""Figures the segment page works out from every member (issue 15: the best channel
of a 500,000-member segment) are kept per organisation, segment and the run or rule
that produced the members: worked out on the first view, read on the next ones,
worked out again for a new run or an edited rule. The page itself is drawn for each
request."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import audiences.channels
from accounts.tenancy import tenant_context
from customers.models import Customer, Event
from segmentation import selectors
from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership
from segmentation.services.rules import rule_segment_update
from segmentation.tests.factories import SegmentationRunFactory, SegmentFactory

pytestmark = pytest.mark.django_db

LATEST = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)


def _customers(org, n: int, prefix: str, **fields) -> list[Customer]:
    return Customer.objects.bulk_create(
        [Customer(organization=org, external_id=f"{prefix}{i}", **fields) for i in range(n)]
    )


def _events(org, customers, event_type: str) -> None:
    Event.objects.bulk_create(
        [
            Event(
                organization=org,
                customer=c,
                type=event_type,
                occurred_at=LATEST - dt.timedelta(days=10),
                properties={},
            )
            for c in customers
        ]
    )


def _fans(org) -> tuple[list[Customer], list[Customer]]:
    """30 customers who click text messages (12 of them) and 30 who click emails
    (25 of them); everyone got both."""
    texters = _customers(org, 30, "t", country="Malta")
    mailers = _customers(org, 30, "m", country="Gozo")
    _events(org, texters + mailers, "sms_sent")
    _events(org, texters + mailers, "email_sent")
    _events(org, texters[:12], "sms_click")
    _events(org, mailers[:25], "email_click")
    return texters, mailers


def _members(org, run, segment, customers) -> None:
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(organization=org, run=run, segment=segment, customer=c)
            for c in customers
        ]
    )


@pytest.fixture
def worked_out():
    """Counts how often the evidence behind the best channel is read."""
    with mock.patch.object(
        audiences.channels, "load_evidence", wraps=audiences.channels.load_evidence
    ) as spy:
        yield spy


def _view(client, segment) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/segments/{segment.pk}/")
    assert response.status_code == 200
    return response.content.decode(), len(queries.captured_queries)


def test_a_segments_best_channel_is_worked_out_once_per_run(owner_client, org, worked_out):
    with tenant_context(org):
        texters, mailers = _fans(org)
        first = SegmentationRunFactory(organization=org, is_live=True)
        segment = SegmentFactory(organization=org, first_run=first, last_run=first, name="Fans")
        _members(org, first, segment, texters)

    html, first_queries = _view(owner_client, segment)
    assert "<strong>SMS</strong> works best for them." in html
    assert "12 of the 30 customers" in html
    html, second_queries = _view(owner_client, segment)
    assert "<strong>SMS</strong> works best for them." in html
    assert worked_out.call_count == 1  # the second view read the figure
    assert second_queries < first_queries

    # a new run puts other customers in the segment: a new figure
    with tenant_context(org):
        SegmentationRun.objects.filter(pk=first.pk).update(is_live=False)
        second = SegmentationRunFactory(organization=org, is_live=True)
        Segment.objects.filter(pk=segment.pk).update(last_run=second)
        _members(org, second, segment, mailers)
    html, _ = _view(owner_client, segment)
    assert "<strong>Email</strong> works best for them." in html
    assert "25 of the 30 customers" in html
    assert worked_out.call_count == 2


def test_a_rule_segments_best_channel_is_worked_out_once_per_rule(owner_client, org, worked_out):
    with tenant_context(org):
        _fans(org)
        segment = SegmentFactory(
            organization=org,
            kind=SegmentKind.RULE,
            name="Islanders",
            rule={
                "op": "and",
                "conditions": [{"field": "country", "operator": "eq", "value": "Malta"}],
            },
        )
    assert "<strong>SMS</strong>" in _view(owner_client, segment)[0]
    assert "<strong>SMS</strong>" in _view(owner_client, segment)[0]
    assert worked_out.call_count == 1

    with tenant_context(org):
        rule_segment_update(
            segment=segment,
            rule={
                "op": "and",
                "conditions": [{"field": "country", "operator": "eq", "value": "Gozo"}],
            },
        )
    assert "<strong>Email</strong>" in _view(owner_client, segment)[0]
    assert worked_out.call_count == 2


def test_the_page_is_still_drawn_for_each_member(client, owner, viewer, org, worked_out):
    """The figure is shared by the organisation's members; what the page offers each
    of them (editing the rule) is not."""
    with tenant_context(org):
        _fans(org)
        segment = SegmentFactory(
            organization=org,
            kind=SegmentKind.RULE,
            name="Islanders",
            rule={
                "op": "and",
                "conditions": [{"field": "country", "operator": "eq", "value": "Malta"}],
            },
        )
    client.force_login(owner)
    as_owner = _view(client, segment)[0]
    client.force_login(viewer)
    as_viewer = _view(client, segment)[0]
    assert worked_out.call_count == 1
    for html in (as_owner, as_viewer):
        assert "<strong>SMS</strong> works best for them." in html
    assert "Edit rule" in as_owner and "Edit rule" not in as_viewer


def test_figures_are_kept_per_organisation(org, other_org):
    """Two organisations never share a figure, even where everything else in the key
    is the same (SQLite repeats ids)."""
    with tenant_context(org):
        segment = SegmentFactory(organization=org)
    with mock.patch.object(selectors, "segment_members_version", return_value="run1"):
        with tenant_context(org):
            assert selectors.segment_figure(segment=segment, name="n", compute=lambda: 1) == 1
            assert selectors.segment_figure(segment=segment, name="n", compute=lambda: 2) == 1
        with tenant_context(other_org):
            assert selectors.segment_figure(segment=segment, name="n", compute=lambda: 3) == 3


def test_no_evidence_is_kept_too(org):
    calls = []

    def compute():
        calls.append(1)

    with tenant_context(org):
        segment = SegmentFactory(organization=org)
        assert selectors.segment_figure(segment=segment, name="n", compute=compute) is None
        assert selectors.segment_figure(segment=segment, name="n", compute=compute) is None
    assert len(calls) == 1


def test_the_members_version_names_the_run_or_the_rule(org):
    with tenant_context(org):
        old = SegmentationRunFactory(organization=org)
        live = SegmentationRunFactory(organization=org, is_live=True)
        active = SegmentFactory(organization=org, last_run=live)
        retired = SegmentFactory(organization=org, last_run=old, is_active=False)
        rule = SegmentFactory(
            organization=org,
            kind=SegmentKind.RULE,
            rule={
                "op": "and",
                "conditions": [{"field": "country", "operator": "eq", "value": "Malta"}],
            },
        )
        assert selectors.segment_members_version(segment=active).startswith(f"run{live.pk}-")
        assert selectors.segment_members_version(segment=retired).startswith(f"run{old.pk}-")
        before = selectors.segment_members_version(segment=rule)
        assert f"run{live.pk}-" in before
        rule.rule = {
            "op": "and",
            "conditions": [{"field": "country", "operator": "eq", "value": "Gozo"}],
        }
        assert selectors.segment_members_version(segment=rule) != before
