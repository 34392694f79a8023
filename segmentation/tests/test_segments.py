"""The segmentation run, end to end from the database: planted groups are found,
the owner's bounds hold, runs are repeatable, segments and personas keep their
ids (and human edits) across runs, and a failed run changes nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from core.exceptions import ApplicationError
from segmentation.ml import rfm
from segmentation.models import (
    Persona,
    Segment,
    SegmentationRun,
    SegmentationSettings,
    SegmentKind,
    SegmentMembership,
)
from segmentation.services import segments as seg_services
from segmentation.services.personas import persona_update
from segmentation.services.segments import latest_data_date, segmentation_run
from segmentation.tests.factories import write_generated_data
from segmentation.tests.ml.test_features import AS_OF, planted_data


@pytest.fixture
def planted(in_org):
    """1,200 customers of four planted behaviour groups, in the database."""
    lines, customers, events, truth = planted_data(n_customers=1200, seed=7)
    pk_of = write_generated_data(
        organization=in_org, lines=lines, customers=customers, events=events
    )
    return pd.Series({pk_of[int(cid)]: g for cid, g in truth.items()})


def cluster_memberships(run: SegmentationRun) -> pd.Series:
    rows = SegmentMembership.objects.filter(
        run=run, segment__kind=SegmentKind.CLUSTER, segment__parent__isnull=True
    ).values_list("customer_id", "segment_id")
    return pd.Series(dict(rows)).sort_index()


def test_a_run_recovers_the_planted_groups(in_org, planted):
    run = segmentation_run(organization=in_org)

    assert run.is_live
    assert run.as_of == AS_OF  # the newest order, not today
    assert run.chosen_k == 4
    members = cluster_memberships(run)
    assert len(members) == len(planted)
    assert adjusted_rand_score(planted.loc[members.index], members.to_numpy()) > 0.9
    clusters = Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True, parent=None)
    assert clusters.count() == 4
    assert sum(s.size for s in clusters) == len(planted)
    assert abs(sum(s.revenue_share for s in clusters) - 1.0) < 1e-6
    # every cluster has a persona, and the segment is called after it
    for segment in clusters:
        assert segment.persona is not None
        assert segment.name == segment.persona.name
        assert segment.profile["sentences"]
    # quality figures and the map are stored with the run
    assert set(run.quality["silhouette_by_k"]) == {str(k) for k in range(2, 9)}
    assert len(run.projection["x"]) == len(run.projection["segment_ids"]) == len(planted)
    assert set(run.projection["segment_ids"]) == {s.pk for s in clusters}
    # gender and birth date were left out of the model
    assert not any(c.startswith(("gender", "age")) for c in run.feature_columns)
    assert any(c.startswith("gender") for c in run.excluded_columns)


def test_rfm_groups_are_segments_with_every_customer_in_one(in_org, planted):
    run = segmentation_run(organization=in_org)
    groups = Segment.objects.filter(kind=SegmentKind.RFM)
    assert {g.name for g in groups} == set(rfm.GROUPS)
    per_customer = SegmentMembership.objects.filter(
        run=run, segment__kind=SegmentKind.RFM
    ).values_list("customer_id", flat=True)
    assert len(per_customer) == len(set(per_customer)) == len(planted)
    active = groups.filter(is_active=True)
    assert sum(g.size for g in active) == len(planted)
    assert all(g.persona is None for g in groups)


@pytest.mark.parametrize(("k_min", "k_max"), [(2, 3), (5, 6)])
def test_k_stays_within_the_owner_bounds(in_org, planted, k_min, k_max):
    SegmentationSettings.objects.create(organization=in_org, k_min=k_min, k_max=k_max)
    run = segmentation_run(organization=in_org)
    assert k_min <= run.chosen_k <= k_max
    assert (
        Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True, parent=None).count()
        == run.chosen_k
    )


def test_the_minimum_segment_size_is_respected(in_org, planted):
    SegmentationSettings.objects.create(organization=in_org, min_segment_size=250, k_max=8)
    run = segmentation_run(organization=in_org)
    sizes = cluster_memberships(run).value_counts()
    assert sizes.min() >= 250
    assert run.quality["min_size"] == 250


def test_same_data_gives_the_same_segments_ids_and_personas(in_org, planted):
    first = segmentation_run(organization=in_org)
    before = cluster_memberships(first)
    personas_before = dict(Persona.objects.values_list("segment_id", "pk"))

    second = segmentation_run(organization=in_org)
    after = cluster_memberships(second)

    assert second.pk != first.pk
    assert (before == after).all()  # same customers in the same segment ids
    assert dict(Persona.objects.values_list("segment_id", "pk")) == personas_before
    first.refresh_from_db()
    assert not first.is_live and second.is_live
    assert SegmentationRun.objects.filter(is_live=True).count() == 1
    # history is kept: both runs' memberships are there
    assert SegmentMembership.objects.filter(run=first).count() > 0


def test_human_edits_to_a_persona_survive_a_new_run(in_org, planted, owner):
    segmentation_run(organization=in_org)
    persona = Persona.objects.order_by("-segment__size").first()
    machine_summary = persona.summary
    persona_update(
        persona=persona,
        data={"name": "Our garden people", "actions": ["Invite them to the spring show"]},
        user=owner,
    )

    segmentation_run(organization=in_org)

    persona.refresh_from_db()
    assert persona.name == "Our garden people"
    assert persona.actions == ["Invite them to the spring show"]
    assert sorted(persona.human_edited_fields) == ["actions", "name"]
    assert persona.summary == machine_summary  # machine fields are refreshed as before
    assert persona.segment.name == "Our garden people"
    # a person can hand a field back to the machine
    persona_update(persona=persona, data={}, reset_fields=["name"], user=owner)
    persona.refresh_from_db()
    assert persona.name == persona.generated["name"]
    assert persona.human_edited_fields == ["actions"]


def test_a_changed_base_keeps_ids_for_the_same_groups(in_org, planted):
    first = segmentation_run(organization=in_org)
    ids_before = set(cluster_memberships(first).unique())
    # a month later: the same groups, the data a little older
    second = segmentation_run(organization=in_org, as_of=AS_OF + dt.timedelta(days=30))
    assert set(cluster_memberships(second).unique()) == ids_before


def test_a_failed_run_leaves_the_live_run_unchanged(in_org, planted, monkeypatch):
    first = segmentation_run(organization=in_org)
    segments_before = list(Segment.objects.values_list("pk", "name", "size", "is_active"))
    memberships_before = SegmentMembership.objects.count()
    personas_before = list(Persona.objects.values_list("pk", "name", "summary"))
    calls = {"n": 0}
    real = seg_services.write_memberships

    def fail_on_second_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the cluster memberships, before the RFM ones
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(seg_services, "write_memberships", fail_on_second_batch)
    with pytest.raises(RuntimeError):
        segmentation_run(organization=in_org)

    assert list(SegmentationRun.objects.values_list("pk", flat=True)) == [first.pk]
    assert SegmentationRun.objects.get(is_live=True).pk == first.pk
    assert list(Segment.objects.values_list("pk", "name", "size", "is_active")) == segments_before
    assert SegmentMembership.objects.count() == memberships_before
    assert list(Persona.objects.values_list("pk", "name", "summary")) == personas_before


def test_without_orders_the_run_says_what_is_missing(in_org):
    with pytest.raises(ApplicationError, match="no data yet"):
        segmentation_run(organization=in_org)
    assert not SegmentationRun.objects.exists()


def test_as_of_limits_the_data(in_org, planted):
    early = AS_OF - dt.timedelta(days=200)
    run = segmentation_run(organization=in_org, as_of=early)
    assert run.as_of == early
    # customers whose first order came later are not segmented in that run
    assert run.n_customers < len(planted)
    assert latest_data_date() == AS_OF


def test_erased_customers_are_not_segmented(in_org, planted):
    from customers.models import Customer

    erased = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[:10])
    Customer.objects.filter(pk__in=erased).update(erased_at=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    run = segmentation_run(organization=in_org)
    assert not SegmentMembership.objects.filter(run=run, customer_id__in=erased).exists()
    assert run.n_customers == len(planted) - 10


def test_the_job_reports_progress_and_its_result(in_org, planted, owner):
    from core.jobs import job_start
    from core.models import JobStatus
    from segmentation.tasks_segments import segments_run

    job = job_start(organization=in_org, kind="segments", task=segments_run, user=owner, sync=True)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.progress == 100
    assert job.result["run_id"] == SegmentationRun.objects.get(is_live=True).pk
    assert job.result["url"] == "/segments/"
    assert "segments among" in job.message
    assert SegmentationRun.objects.get(is_live=True).job_id == job.pk


def test_a_job_that_fails_says_why(in_org, owner):
    from core.jobs import job_start
    from core.models import JobStatus
    from segmentation.tasks_segments import segments_run

    job = job_start(organization=in_org, kind="segments", task=segments_run, user=owner, sync=True)
    assert job.status == JobStatus.FAILED
    assert "import customers and orders" in job.message


def test_memberships_of_old_runs_are_pruned_but_sizes_stay(in_org, planted, monkeypatch):
    monkeypatch.setattr(seg_services, "MEMBERSHIP_HISTORY_RUNS", 2)
    runs = [segmentation_run(organization=in_org) for _ in range(3)]
    seg_services.segmentation_prune_history(keep_runs=2)
    assert not SegmentMembership.objects.filter(run=runs[0]).exists()
    assert SegmentMembership.objects.filter(run=runs[1]).exists()
    assert runs[0].summary["segments"]  # per-segment sizes survive
    assert np.all([r.n_customers == len(planted) for r in runs])
