"""The events Segmenta writes itself (messages sent, opened and clicked, offers
redeemed, surveys answered, loyalty tiers changed...) are not the shop's customer
activity: sending a campaign must not change a customer's features, nor which
segment they are in. The shop's own events (here its imported email opens) count."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from customers.models import SEGMENTA_EVENT_TYPES, Event
from segmentation.ml.features import build_features
from segmentation.models import SegmentKind, SegmentMembership
from segmentation.services.segments import load_data, segmentation_run
from segmentation.tests.factories import write_generated_data
from segmentation.tests.ml.test_features import AS_OF, planted_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(in_org):
    """400 customers of four planted groups (with the shop's own email_open events)."""
    lines, customers, events, _ = planted_data(n_customers=400, seed=11)
    pk_of = write_generated_data(
        organization=in_org, lines=lines, customers=customers, events=events
    )
    return sorted(pk_of.values())


def _send_a_campaign(org, customer_pks: list[int]) -> None:
    """What a campaign (and what follows it) writes: uneven across customers, as it
    would be, so that it could tell them apart if it were counted."""
    when = dt.datetime.combine(AS_OF, dt.time(9), tzinfo=dt.UTC) - dt.timedelta(days=5)
    rows = []
    for i, pk in enumerate(customer_pks):
        kinds = ["message_sent"]
        if i % 2:
            kinds += ["message_opened"] * 3
        if i % 3 == 0:
            kinds += ["message_clicked", "converted", "offer_redeemed"]
        if i % 5 == 0:
            kinds += ["survey_answered", "tier_changed", "unsubscribed"]
        if i % 7 == 0:
            kinds += ["message_bounced", "message_complained"]
        rows += [
            Event(organization=org, customer_id=pk, type=kind, occurred_at=when) for kind in kinds
        ]
    assert {e.type for e in rows} == SEGMENTA_EVENT_TYPES  # every kind Segmenta writes
    Event.objects.bulk_create(rows)


def _features(org):
    data = load_data(organization_id=org.pk, as_of=AS_OF)
    return build_features(
        lines=data.lines, customers=data.customers, events=data.events, as_of=AS_OF
    )


def test_segmenta_events_do_not_change_the_customers_features(in_org, shop):
    before = _features(in_org)
    assert "events:email_open" in before.matrix.columns  # the shop's events count

    _send_a_campaign(in_org, shop)
    after = _features(in_org)

    assert list(after.matrix.columns) == list(before.matrix.columns)
    assert list(after.raw.columns) == list(before.raw.columns)
    pd.testing.assert_frame_equal(after.raw, before.raw)
    pd.testing.assert_frame_equal(after.matrix, before.matrix)


def test_sending_a_campaign_moves_nobody_between_segments(in_org, shop):
    def members(run) -> pd.Series:
        rows = SegmentMembership.objects.filter(
            run=run, segment__kind=SegmentKind.CLUSTER, segment__parent__isnull=True
        ).values_list("customer_id", "segment_id")
        return pd.Series(dict(rows)).sort_index()

    first_run = segmentation_run(organization=in_org)
    _send_a_campaign(in_org, shop)
    second_run = segmentation_run(organization=in_org)

    # the model is given the same columns (no 'message_sent events' among them)...
    assert second_run.feature_columns == first_run.feature_columns
    assert not any("message" in c for c in second_run.feature_columns)
    # ...and everybody stays in their segment
    first, second = members(first_run), members(second_run)
    assert len(first) == len(shop)
    pd.testing.assert_series_equal(second, first)
