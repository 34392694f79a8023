"""A pipeline run marks the customers it changed in the narrow `CustomerChange` table
(not by rewriting their rows), and `?updated_since=` reads both (issue 15)."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from customers.models import Customer, CustomerChange
from customers.services.privacy import customer_erase

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
SINCE = "2021-01-01T00:00:00Z"


def _segment_runs(people, moved):
    """Two runs: everyone in segment a (some in a second segment too), but `moved`
    goes from a to b in the second."""
    from segmentation.models import Segment, SegmentationRun, SegmentMembership

    runs = [SegmentationRun.objects.create(as_of=dt.date(2026, 1, d)) for d in (1, 2)]
    a, b, c = (Segment.objects.create(kind="cluster", name=n, key=f"cluster-{n}") for n in "abc")
    for run in runs:
        for person in people:
            SegmentMembership.objects.create(run=run, segment=a, customer=person)
            # a second segment for each: the first run's mark names each customer once
            SegmentMembership.objects.create(run=run, segment=c, customer=person)
    SegmentMembership.objects.create(run=runs[0], segment=a, customer=moved)
    SegmentMembership.objects.create(run=runs[1], segment=b, customer=moved)
    return runs


def _api(org):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_api_key(org, scope='write')[1]}")
    return client


def _changed_ids(client, path="/api/v1/customers/"):
    body = client.get(f"{path}?updated_since={SINCE}&page_size=100").json()
    return {r["id"] for r in body["results"]}


def test_a_run_marks_changed_customers_without_rewriting_their_rows(org):
    from segmentation.services.segments import _touch_moved_customers

    with tenant_context(org):
        people = [CustomerFactory(external_id=f"S{i}") for i in range(4)]
        moved = CustomerFactory(external_id="MOVED")
        runs = _segment_runs(people, moved)
        Customer.objects.update(updated_at=LONG_AGO)
        # a first run: every member, each once though in two segments
        _touch_moved_customers(previous=None, run=runs[0])
        first = dict(CustomerChange.objects.values_list("customer_id", "changed_at"))
        assert set(first) == {p.pk for p in people} | {moved.pk}
        # the second run: only the customer who moved, whose mark moves on
        _touch_moved_customers(previous=runs[0], run=runs[1])
        second = dict(CustomerChange.objects.values_list("customer_id", "changed_at"))
        assert set(second) == set(first)  # one row a customer, never two
        assert second[moved.pk] > first[moved.pk]
        assert all(second[p.pk] == first[p.pk] for p in people)
        # the customer rows themselves were not written
        assert set(Customer.objects.values_list("updated_at", flat=True)) == {LONG_AGO}


def test_updated_since_reads_the_marks_on_customers_members_and_predictions(org):
    from segmentation.services.segments import _touch_moved_customers

    client = _api(org)
    with tenant_context(org):
        people = [CustomerFactory(external_id=f"S{i}") for i in range(3)]
        moved = CustomerFactory(external_id="MOVED")
        runs = _segment_runs(people, moved)
        runs[0].is_live = False
        runs[0].save()
        runs[1].is_live = True
        runs[1].save()
        Customer.objects.update(updated_at=LONG_AGO)
        from segmentation.models import Segment

        segment_b = Segment.objects.get(key="cluster-b")
    assert _changed_ids(client) == set()
    with tenant_context(org):
        _touch_moved_customers(previous=runs[0], run=runs[1])
    assert _changed_ids(client) == {moved.pk}
    assert _changed_ids(client, f"/api/v1/segments/{segment_b.pk}/members/") == {moved.pk}
    # a mark older than the time asked for does not count
    with tenant_context(org):
        CustomerChange.objects.update(changed_at=LONG_AGO)
    assert _changed_ids(client) == set()


def test_prediction_changes_are_read_through_the_marks(org):
    from predictions.models import CustomerPrediction, PredictionRun
    from predictions.services import _touch_changed_customers

    client = _api(org)
    with tenant_context(org):
        same, changed = CustomerFactory(external_id="P1"), CustomerFactory(external_id="P2")
        runs = [
            PredictionRun.objects.create(as_of=dt.date(2026, 1, d), method="bgnbd") for d in (1, 2)
        ]
        for run, clv in zip(runs, (100.0, 250.0), strict=True):
            for person, value in ((same, 100.0), (changed, clv)):
                CustomerPrediction.objects.create(
                    run=run, customer=person, p_alive=0.9, expected_orders_30d=0.5,
                    expected_orders_90d=1.2, expected_orders_365d=4.0, predicted_clv_365d=value,
                    expected_order_value=30.0, churn_probability=0.3, churn_risk="low",
                    method="bgnbd",
                )  # fmt: skip
        PredictionRun.objects.filter(pk=runs[1].pk).update(is_live=True)
        Customer.objects.update(updated_at=LONG_AGO)
        _touch_changed_customers(previous=runs[0], run=runs[1])
        assert set(CustomerChange.objects.values_list("customer_id", flat=True)) == {changed.pk}
    body = client.get(f"/api/v1/predictions/customers/?updated_since={SINCE}").json()
    assert [r["customer"]["id"] if isinstance(r["customer"], dict) else r["customer"]
            for r in body["results"]] == [changed.pk]  # fmt: skip


def test_marks_are_the_organisations_own_and_go_with_an_erasure(org, other_org):
    from segmentation.services.segments import _touch_moved_customers

    with tenant_context(other_org):
        theirs = [CustomerFactory(external_id=f"T{i}") for i in range(2)]
        their_moved = CustomerFactory(external_id="TM")
        _touch_moved_customers(previous=None, run=_segment_runs(theirs, their_moved)[0])
    with tenant_context(org):
        mine = CustomerFactory(external_id="MINE")
        Customer.objects.update(updated_at=LONG_AGO)
        CustomerChange.objects.create(customer=mine, changed_at=dt.datetime.now(dt.UTC))
        assert CustomerChange.objects.count() == 1
    assert _changed_ids(_api(org)) == {mine.pk}
    with tenant_context(org):
        customer_erase(customer=mine, actor=None)
        assert not CustomerChange.objects.exists()
    with tenant_context(other_org):
        assert CustomerChange.objects.count() == 3


@pytest.mark.parametrize("few", [5_000, 1], ids=["ids of few marks", "each row's mark"])
def test_both_ways_of_reading_the_marks_give_the_same_rows(org, monkeypatch, few):
    """Few marks are read as ids, many are checked row by row (core.api.params): the
    same customers either way, in id order across cursor pages."""
    import core.api.params

    monkeypatch.setattr(core.api.params, "FEW_MARKS", few)
    client = _api(org)
    now = dt.datetime.now(dt.UTC)
    with tenant_context(org):
        people = [CustomerFactory(external_id=f"C{i:02d}") for i in range(12)]
        Customer.objects.update(updated_at=LONG_AGO)
        marked = people[::3]  # 4 marked by a run
        for person in marked:
            CustomerChange.objects.create(customer=person, changed_at=now)
        edited = people[1]  # and one edited itself
        Customer.objects.filter(pk=edited.pk).update(updated_at=now)
    seen, url = [], f"/api/v1/customers/?updated_since={SINCE}&cursor=&page_size=2"
    while url:
        body = client.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == sorted({p.pk for p in marked} | {edited.pk})
