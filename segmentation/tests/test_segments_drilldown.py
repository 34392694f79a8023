"""Drill-down through the database: sub-segments of each segment are stored with
their parent, keep their ids across runs, have personas, and show in the API
(`parent_id`, `?parent=`) and on the pages (issue 9: CDNOW gave 2 groups)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from segmentation.models import Segment, SegmentKind, SegmentMembership
from segmentation.services.segments import segmentation_run
from segmentation.tests.factories import planted_run


@pytest.fixture
def live(org):
    return planted_run(org, n_customers=1200)


def subsegments():
    return list(
        Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True, parent__isnull=False)
    )


def subsegments_of_org(org) -> list[Segment]:
    with tenant_context(org):
        return subsegments()


def test_each_segment_is_split_one_level_with_the_same_minimum_size(org, live):
    run, _ = live
    with tenant_context(org):
        top = {s.pk: s for s in Segment.objects.filter(kind=SegmentKind.CLUSTER, parent=None)}
        subs = subsegments()
        assert subs, "no segment of the planted data was split"
        assert len(top) == run.chosen_k
        min_size = run.quality["min_size"]
        for sub in subs:
            assert sub.parent_id in top
            assert sub.size >= min_size
            assert sub.persona is not None and sub.name == sub.persona.name
            assert sub.name not in {s.name for s in top.values()}
            assert sub.profile["drill_down"]["stability"] >= 0.6
            members = set(
                SegmentMembership.objects.filter(run=run, segment=sub).values_list(
                    "customer_id", flat=True
                )
            )
            parent_members = set(
                SegmentMembership.objects.filter(run=run, segment_id=sub.parent_id).values_list(
                    "customer_id", flat=True
                )
            )
            assert len(members) == sub.size and members <= parent_members
        # a split segment's sub-segments cover all its members
        for parent_id in {s.parent_id for s in subs}:
            assert sum(s.size for s in subs if s.parent_id == parent_id) == top[parent_id].size
        # RFM groups and rules have no parent; the run keeps what drill-down did per segment
        assert not Segment.objects.filter(kind=SegmentKind.RFM, parent__isnull=False).exists()
        assert len(run.quality["drill_down"]) == run.chosen_k


def test_sub_segments_keep_their_ids_on_the_next_run(org, live):
    with tenant_context(org):
        before = {s.pk: (s.parent_id, s.size, s.name) for s in subsegments()}
        second = segmentation_run(organization=org)
        after = {s.pk: (s.parent_id, s.size, s.name) for s in subsegments()}
        assert after == before
        assert second.is_live


def test_api_lists_parent_id_and_filters_by_parent(api_read, org, live):
    with tenant_context(org):
        sub = subsegments()[0]
        siblings = {s.pk for s in subsegments() if s.parent_id == sub.parent_id}
    body = api_read.get("/api/v1/segments/?page_size=200").json()["results"]
    by_id = {s["id"]: s for s in body}
    assert by_id[sub.pk]["parent_id"] == sub.parent_id
    assert all(s["parent_id"] is None for s in body if s["kind"] != "cluster")
    children = api_read.get(f"/api/v1/segments/?parent={sub.parent_id}").json()["results"]
    assert {s["id"] for s in children} == siblings
    top = api_read.get("/api/v1/segments/?parent=none&kind=cluster").json()["results"]
    assert top and all(s["parent_id"] is None for s in top)
    assert api_read.get(f"/api/v1/segments/{sub.pk}/").json()["parent_id"] == sub.parent_id
    bad = api_read.get("/api/v1/segments/?parent=abc")
    assert bad.status_code == 400
    assert "parent" in bad.json()["error"]["message"]


def test_customer_segment_stays_the_top_level_one(api_read, org, live):
    with tenant_context(org):
        sub = subsegments()[0]
        member = SegmentMembership.objects.filter(segment=sub, run=live[0]).first().customer
    body = api_read.get(f"/api/v1/customers/{member.pk}/").json()
    assert body["segment"]["id"] == sub.parent_id
    assert sub.pk in {s["id"] for s in body["segments"]}


def test_pages_nest_sub_segments_and_explain_the_choice(owner_client, org, live):
    run, _ = live
    with tenant_context(org):
        sub = subsegments()[0]
        parent = sub.parent
    html = owner_client.get("/segments/").content.decode()
    assert "Groups within" in html
    n_sub = len(subsegments_of_org(org))
    assert f'Groups within segments</span><span class="stat-value">{n_sub}<' in html
    assert reverse("segmentation:segment_detail", args=[sub.pk]) in html
    assert run.quality["explanation"].split(".")[0] in html  # "We found N groups"
    assert "About this model" in html and "Stability" in html
    page = owner_client.get(reverse("segmentation:segment_detail", args=[parent.pk]))
    text = page.content.decode()
    assert "Groups within this segment" in text and sub.name in text
    sub_page = owner_client.get(reverse("segmentation:segment_detail", args=[sub.pk]))
    assert f'part of <a href="{reverse("segmentation:segment_detail", args=[parent.pk])}"' in (
        sub_page.content.decode()
    )


def test_personas_page_says_which_segment_a_group_is_within(owner_client, org, live):
    with tenant_context(org):
        sub = subsegments()[0]
        parent = sub.parent
    html = owner_client.get(reverse("segmentation:personas")).content.decode()
    within = (
        f'a group within <a href="{reverse("segmentation:segment_detail", args=[parent.pk])}">'
        f"{parent.name}</a>"
    )
    assert within in html
    # top-level personas come first
    assert html.index(parent.persona.name) < html.index(sub.persona.name)


def test_sub_segments_are_named_by_what_sets_them_apart_within_their_parent(org, live):
    """Issue 9: groups within a segment were the parent's name with a number
    ("Loyal Regulars 1", "Loyal Regulars 2")."""
    import re

    with tenant_context(org):
        subs = subsegments()
        assert subs
        for sub in subs:
            parent = sub.parent
            assert sub.name.startswith(f"{parent.name}: "), sub.name
            assert not re.search(r"\d+$", sub.name), sub.name
            assert sub.persona.name == sub.name
            assert sub.persona.summary.startswith(sub.name)
        names = [s.name for s in subs]
        assert len(names) == len(set(names))
