"""Best channel: planted engagement picks the planted channel; no evidence, None;
the segment page shows it as a panel."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache

from accounts.tenancy import tenant_context
from audiences.channels import (
    MIN_REACHED,
    best_channel,
    classify_event_type,
    segment_best_channels,
)
from customers.models import Customer, Event, Order
from segmentation.models import SegmentKind, SegmentMembership
from segmentation.tests.factories import SegmentationRunFactory, SegmentFactory

LATEST = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _customers(org, n: int, prefix: str) -> list[Customer]:
    return Customer.objects.bulk_create(
        [Customer(organization=org, external_id=f"{prefix}{i}") for i in range(n)]
    )


def _events(org, customers, event_type: str, *, days_ago: int = 10, **properties) -> None:
    Event.objects.bulk_create(
        [
            Event(
                organization=org,
                customer=c,
                type=event_type,
                occurred_at=LATEST - dt.timedelta(days=days_ago),
                properties=properties,
            )
            for c in customers
        ]
    )


def _orders(org, customers, channel: str, *, days_ago: int = 5, **fields) -> None:
    Order.objects.bulk_create(
        [
            Order(
                organization=org,
                external_id=f"{channel}-{c.pk}-{days_ago}",
                customer=c,
                ordered_at=LATEST - dt.timedelta(days=days_ago),
                channel=channel,
                **fields,
            )
            for c in customers
        ]
    )


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("email_open", ("email", False)),
        ("email_click", ("email", True)),
        ("EmailClicked", ("email", True)),
        ("newsletter_sent", ("email", False)),
        ("sms_click", ("sms", True)),
        ("push_opened", ("push", False)),
        ("email_bounced", None),
        ("sms_unsubscribe", None),
        ("page_view", None),
        ("emailed", None),  # not the word email
        ("e-mail_click", ("email", True)),
        ("direct_mail_sent", None),  # the post
    ],
)
def test_imported_event_types_are_read_by_their_words(event_type, expected):
    assert classify_event_type(event_type) == expected


def test_the_planted_channel_wins(in_org):
    group = _customers(in_org, 40, "g")
    # email: all 40 got one, 8 clicked (20%); SMS: all 40 got one, 20 clicked (50%)
    _events(in_org, group, "email_sent")
    _events(in_org, group[:8], "email_click")
    _events(in_org, group, "message_sent", channel="sms")
    _events(in_org, group[10:30], "message_clicked", channel="sms")
    _events(in_org, group, "email_open")  # opens are reach, not engagement
    _orders(in_org, group, "web")  # where they buy comes after message channels
    found = best_channel([c.pk for c in group], organization=in_org)
    assert found["channel"] == "sms"
    assert found["label"] == "SMS"
    assert found["rate"] == 0.5
    assert found["customers"] == 40
    assert "20 of the 40 customers" in found["reason"] and "20% for Email" in found["reason"]
    by = {(r["kind"], r["channel"]): r for r in found["by_channel"]}
    assert by[("message", "email")]["rate"] == 0.2
    assert by[("order", "web")]["rate"] == 1.0
    assert set(by[("message", "email")]) >= {"channel", "label", "customers", "rate"}


def test_only_the_groups_customers_count(in_org):
    group = _customers(in_org, 30, "g")
    others = _customers(in_org, 30, "o")
    _events(in_org, group + others, "sms_sent")
    _events(in_org, group, "sms_click")
    _events(in_org, group + others, "email_sent")
    _events(in_org, others, "email_click")
    assert best_channel([c.pk for c in group], organization=in_org)["channel"] == "sms"
    assert best_channel([c.pk for c in others], organization=in_org)["channel"] == "email"


def test_no_evidence_is_none(in_org):
    group = _customers(in_org, 50, "g")
    ids = [c.pk for c in group]
    assert best_channel(ids, organization=in_org) is None
    assert best_channel([], organization=in_org) is None
    # too few reached to judge
    _events(in_org, group[: MIN_REACHED - 1], "email_click")
    assert best_channel(ids, organization=in_org) is None
    # reached but nobody engaged
    _events(in_org, group, "sms_sent")
    assert best_channel(ids, organization=in_org) is None
    # engagement older than the window before the newest data does not count
    _events(in_org, group, "sms_click", days_ago=200)
    assert best_channel(ids, organization=in_org) is None


def test_where_they_buy_when_no_message_channel_has_evidence(in_org):
    group = _customers(in_org, 40, "g")
    _orders(in_org, group[:30], "Store")
    _orders(in_org, group[25:], " web ", days_ago=6)
    _orders(in_org, group[:40], "marketplace", days_ago=7, is_return=True)  # returns: no
    _orders(in_org, group[:40], "phone", days_ago=8, status="cancelled")  # not paid: no
    found = best_channel([c.pk for c in group], organization=in_org)
    assert found["channel"] == "store" and found["label"] == "Store"
    assert found["kind"] == "order"
    assert found["rate"] == 0.75 and found["customers"] == 40
    assert {r["channel"] for r in found["by_channel"]} == {"store", "web"}


def test_segment_best_channels_in_one_pass_and_cached_per_organisation(org, other_org):
    with tenant_context(org):
        run = SegmentationRunFactory(organization=org, is_live=True)
        email_fans = SegmentFactory(organization=org, last_run=run)
        sms_fans = SegmentFactory(organization=org, last_run=run)
        quiet = SegmentFactory(organization=org, last_run=run)
        a = _customers(org, 30, "a")
        b = _customers(org, 30, "b")
        q = _customers(org, 30, "q")
        for segment, members in ((email_fans, a), (sms_fans, b), (quiet, q)):
            SegmentMembership.objects.bulk_create(
                [
                    SegmentMembership(organization=org, run=run, segment=segment, customer=c)
                    for c in members
                ]
            )
        _events(org, a + b, "email_sent")
        _events(org, a + b, "sms_sent")
        _events(org, a, "email_click")
        _events(org, b, "sms_click")
        found = segment_best_channels()
        assert found[email_fans.pk]["channel"] == "email"
        assert found[sms_fans.pk]["channel"] == "sms"
        assert quiet.pk not in found
        assert segment_best_channels(organization=org) == found
    with tenant_context(other_org):
        assert segment_best_channels() == {}  # no live run of its own, nothing shared


def test_the_segment_page_shows_the_best_channel(owner_client, org):
    with tenant_context(org):
        run = SegmentationRunFactory(organization=org, is_live=True)
        segment = SegmentFactory(organization=org, last_run=run, name="Texters")
        empty = SegmentFactory(organization=org, last_run=run, name="Quiet ones")
        members = _customers(org, 30, "t")
        SegmentMembership.objects.bulk_create(
            [
                SegmentMembership(organization=org, run=run, segment=segment, customer=c)
                for c in members
            ]
        )
        _events(org, members, "sms_sent")
        _events(org, members[:12], "sms_click")
    html = owner_client.get(f"/segments/{segment.pk}/").content.decode()
    assert 'id="panel-best_channel"' in html
    assert "Best channel" in html
    assert "<strong>SMS</strong> works best for them." in html
    assert "12 of the 30 customers" in html
    assert "40% of the 30 reached" in html
    html = owner_client.get(f"/segments/{empty.pk}/").content.decode()
    assert 'id="panel-best_channel"' in html
    assert "No evidence yet" in html


def test_a_rule_segment_is_evaluated_now(owner_client, org):
    with tenant_context(org):
        members = _customers(org, 25, "r")
        Customer.objects.filter(pk__in=[c.pk for c in members]).update(country="Malta")
        segment = SegmentFactory(
            organization=org,
            kind=SegmentKind.RULE,
            name="Malta",
            rule={
                "op": "and",
                "conditions": [{"field": "country", "operator": "eq", "value": "Malta"}],
            },
        )
        _events(org, members, "email_sent")
        _events(org, members[:5], "email_click")
    response = owner_client.get(f"/segments/{segment.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="panel-best_channel"' in html
    assert "<strong>Email</strong> works best for them." in html


def test_the_partial_on_an_audience_page():
    from django.template.loader import render_to_string

    html = render_to_string("audiences/_best_channel.html", {"best_channel": None})
    assert "No evidence yet" in html
    assert "Build an audience" not in html
    found = {
        "channel": "email",
        "label": "Email",
        "kind": "message",
        "rate": 0.3,
        "customers": 50,
        "reason": "Because.",
        "min_customers": MIN_REACHED,
        "by_channel": [
            {"channel": "email", "label": "Email", "kind": "message", "customers": 50, "rate": 0.3},
            {"channel": "sms", "label": "SMS", "kind": "message", "customers": 5, "rate": 0.6},
        ],
    }
    html = render_to_string("audiences/_best_channel.html", {"best_channel": found})
    assert "<strong>Email</strong> works best for them." in html
    assert '60% of the 5 reached clicked or bought <span class="muted">(too few to judge)' in html


def test_a_queryset_of_ids_is_read_once(in_org, django_assert_max_num_queries):
    group = _customers(in_org, 30, "g")
    _events(in_org, group, "sms_sent")
    _events(in_org, group[:9], "sms_click")
    ids = Customer.objects.values_list("pk", flat=True)
    # a handful of reads, not one per customer (PostgreSQL adds the statements that
    # set the organisation for row-level security)
    with django_assert_max_num_queries(16):
        found = best_channel(ids, organization=in_org)
    assert found["channel"] == "sms" and found["rate"] == 0.3
