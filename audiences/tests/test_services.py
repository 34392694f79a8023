"""Audiences: definitions are checked with the field named, segments combine as
the contract says, figures count consent, a build stores members and figures in
one go, sensitive unlocks are audited, erasure and both exports cover members."""

from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from audiences.definitions import definition_clean
from audiences.models import Audience, AudienceMember, AudienceStatus
from audiences.services import (
    audience_build,
    audience_create,
    audience_preview,
    audience_update,
    audiences_refresh_all,
)
from audiences.tests.helpers import segments_world
from core.exceptions import ApplicationError


@pytest.fixture
def world(org):
    return segments_world(org)


def _ids(world, indexes):
    return {world["customers"][i].pk for i in indexes}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("nope", "definition"),
        ({"kind": "magic"}, "kind"),
        ({"kind": "segments"}, "include"),
        ({"kind": "segments", "include": ["x"]}, "include"),
        ({"kind": "segments", "include": [1], "match": "some"}, "match"),
        ({"kind": "goal", "goal": "be_happy"}, "goal"),
        ({"kind": "goal", "goal": "order_soon", "days": 0}, "days"),
        ({"kind": "goal", "goal": "buy_category"}, "category"),
        ({"kind": "response", "event": "clicked"}, "exposure_event"),
        ({"kind": "lookalike"}, "seed_segment_id"),
        ({"kind": "location"}, "near"),
        ({"kind": "location", "near": {"latitude": 91, "longitude": 0, "km": 5}}, "near.latitude"),
        ({"kind": "location", "store": 1}, "km"),
        ({"kind": "goal", "goal": "order_soon", "size": -3}, "size"),
        ({"kind": "goal", "goal": "order_soon", "use_sensitive": True}, "reason"),
        ({"kind": "rules", "rule": {"op": "and", "conditions": []}}, "rule"),
    ],
)
def test_bad_definitions_name_the_field(in_org, raw, field):
    with pytest.raises(ApplicationError) as caught:
        definition_clean(raw)
    assert field in caught.value.extra["fields"], caught.value.message


def test_segments_union_intersection_and_exclusion(org, world):
    a, b, rule = world["a"].pk, world["b"].pk, world["rule"].pk
    with tenant_context(org):
        union = audience_preview(
            organization=org, definition={"kind": "segments", "include": [a, b]}
        )
        assert union["size"] == 40
        minus = audience_preview(
            organization=org, definition={"kind": "segments", "include": [a], "exclude": [rule]}
        )
        # segment A is customers 0-19; the rule takes every third (0, 3, ... 18): 7 of them
        assert minus["size"] == 20 - 7
        both = audience_preview(
            organization=org, definition={"kind": "segments", "include": [a, rule], "match": "all"}
        )
        assert both["size"] == 7


def test_reach_counts_consent_and_an_address(org, world):
    from customers.models import Customer

    with tenant_context(org):
        # one consenting customer without an email address cannot be reached
        Customer.objects.filter(pk=world["customers"][0].pk).update(email="")
        figures = audience_preview(
            organization=org, definition={"kind": "segments", "include": [world["a"].pk]}
        )
    # customers 0-19: even ones consent to email (10) minus the one without an address;
    # every fourth consents to SMS (0, 4, 8, 12, 16)
    assert figures["reachable"] == {"email": 9, "sms": 5}


def test_unknown_segment_is_named(org, world):
    with tenant_context(org), pytest.raises(ApplicationError) as caught:
        audience_preview(organization=org, definition={"kind": "segments", "include": [999999]})
    assert "999999" in caught.value.message


def test_rules_kind_uses_the_rule_grammar(org, world):
    with tenant_context(org):
        figures = audience_preview(
            organization=org,
            definition={
                "kind": "rules",
                "rule": {
                    "op": "and",
                    "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}],
                },
            },
        )
    assert figures["size"] == 14  # 0, 3, ..., 39


def test_build_stores_members_and_figures_and_refreshes(org, owner, world):
    with tenant_context(org):
        audience = audience_create(
            organization=org,
            name="Loyal minus regulars",
            definition={
                "kind": "segments",
                "include": [world["a"].pk],
                "exclude": [world["rule"].pk],
            },
            user=owner,
            sync=True,
        )
        assert audience.status == AudienceStatus.READY
        assert audience.size == 13 and audience.refreshed_at is not None
        members = set(
            AudienceMember.objects.filter(audience=audience).values_list("customer_id", flat=True)
        )
        assert members == _ids(world, [i for i in range(20) if i % 3])
        first = audience.refreshed_at

        audience = audience_update(
            organization=org,
            audience=audience,
            definition={"kind": "segments", "include": [world["b"].pk]},
            user=owner,
            sync=True,
        )
        assert audience.size == 20 and audience.refreshed_at > first
        assert audiences_refresh_all() == {"rebuilt": 1, "failed": 0}


def test_duplicate_names_are_refused(org, owner, world):
    definition = {"kind": "segments", "include": [world["a"].pk]}
    with tenant_context(org):
        audience_create(organization=org, name="Best", definition=definition, user=owner, sync=True)
        with pytest.raises(ApplicationError) as caught:
            audience_create(organization=org, name=" best ", definition=definition, user=owner)
    assert "name" in caught.value.extra["fields"]


def test_a_failed_build_keeps_the_last_members_and_says_why(org, owner, world):
    from segmentation.models import Segment

    with tenant_context(org):
        audience = audience_create(
            organization=org,
            name="Fading",
            definition={"kind": "segments", "include": [world["b"].pk]},
            user=owner,
            sync=True,
        )
        Segment.objects.filter(pk=world["b"].pk).delete()
        with pytest.raises(ApplicationError):
            audience_build(audience_id=audience.pk)
        audience.refresh_from_db()
        assert audience.status == AudienceStatus.FAILED
        assert str(world["b"].pk) in audience.message
        assert AudienceMember.objects.filter(audience=audience).count() == 20


def test_goal_needs_predictions_first(org, world):
    with tenant_context(org), pytest.raises(ApplicationError) as caught:
        audience_preview(organization=org, definition={"kind": "goal", "goal": "order_soon"})
    assert "Predictions have not run" in caught.value.message


def test_using_sensitive_attributes_is_audited_with_the_reason(org, owner, world):
    with tenant_context(org):
        audience_create(
            organization=org,
            name="With ages",
            definition={
                "kind": "segments",
                "include": [world["a"].pk],
                "use_sensitive": True,
                "reason": "Age-restricted product: adults only",
            },
            user=owner,
            sync=True,
        )
        entry = AuditLogEntry.objects.get(action="audience.sensitive_unlocked")
    assert entry.details["reason"] == "Age-restricted product: adults only"
    assert entry.actor == owner


# Every model of this app, with what erasure does to its rows and whether each export
# (one person's JSON, the organisation's zip) carries it. A new model must be added
# here, which makes its author decide both.
AUDIENCE_TABLES = {
    "Audience": (
        "a definition and counts; erased customers' ids leave lookalike seed lists",
        None,
        None,
    ),
    "AudienceMember": ("deleted", "person", "org"),
}


def test_personal_tables_are_erased_and_exported(org, owner, world):
    import io
    import zipfile
    from pathlib import Path

    from django.apps import apps
    from django.conf import settings

    from core.models import Job
    from customers.services.privacy import (
        customer_erase,
        customer_export_data,
        organization_export_run,
    )

    assert {m.__name__ for m in apps.get_app_config("audiences").get_models()} == set(
        AUDIENCE_TABLES
    )
    customer = world["customers"][1]
    with tenant_context(org):
        audience = audience_create(
            organization=org,
            name="Loyal",
            definition={"kind": "segments", "include": [world["a"].pk]},
            user=owner,
            sync=True,
        )
        exported = customer_export_data(customer=customer)
        assert [a["audience"] for a in exported["audiences"]] == ["Loyal"]

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            text = io.TextIOWrapper(archive.open("audience_members.csv"), encoding="utf-8").read()
        assert text.splitlines()[0] == "audience_id,audience,customer_id,rank,score"
        assert result["files"]["audience_members.csv"] == 20
        assert customer.external_id in text

        customer_erase(customer=customer, actor=owner)
        assert not AudienceMember.objects.filter(customer_id=customer.pk).exists()
        assert AudienceMember.objects.filter(audience=audience).count() == 19


def test_pipeline_rebuilds_audiences_after_the_other_steps(org, owner, world):
    from segmentation.pipeline import available_steps

    names = [s.name for s in available_steps()]
    assert names[-1] == "audiences" or names.index("audiences") > names.index("recommendations")
    with tenant_context(org):
        audience = audience_create(
            organization=org,
            name="Loyal",
            definition={"kind": "segments", "include": [world["a"].pk]},
            user=owner,
            sync=True,
        )
        Audience.objects.filter(pk=audience.pk).update(size=0)
        from segmentation.pipeline import pipeline_start

        pipeline_start(organization=org, steps=["audiences"], sync=True)
        audience.refresh_from_db()
    assert audience.size == 20 and audience.status == AudienceStatus.READY


def test_big_audiences_are_written_in_one_staged_statement_with_the_same_rows(
    org, owner, world, monkeypatch
):
    """Above WRITE_CHUNK members PostgreSQL writes them by COPY into a staging table
    (issue 15); ranks, scores and figures are those of the row-by-row write."""
    from audiences import services

    definition = {"kind": "segments", "include": [world["b"].pk]}
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Staged", definition=definition, user=owner, sync=True
        )
        before = list(
            AudienceMember.objects.filter(audience=audience)
            .order_by("rank")
            .values_list("customer_id", "rank", "score")
        )
        size = audience.size
        monkeypatch.setattr(services, "WRITE_CHUNK", 3)
        audience = audience_build(audience_id=audience.pk)
        after = list(
            AudienceMember.objects.filter(audience=audience)
            .order_by("rank")
            .values_list("customer_id", "rank", "score")
        )
    assert size == 20 and audience.size == size
    assert after == before and [rank for _, rank, _ in after] == list(range(1, 21))
