"""An erased customer's own id leaves the seed lists of saved lookalike audiences (the
only stored definitions that name customers). An audience with seeds left is
rebuilt without them; one whose seeds were all erased keeps an empty seed list,
loses its members and says it needs new seeds, until it is given some."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from audiences.models import Audience, AudienceMember, AudienceStatus
from audiences.services import (
    SEEDS_ERASED,
    audience_build,
    audience_create,
    audience_update,
    audiences_refresh_all,
)
from audiences.tests.helpers import segments_world
from core.models import Job, JobStatus
from customers.models import Customer
from customers.services.privacy import customer_erase

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(org):
    """segments_world's 40 customers (C000…C039), the first 25 visiting more."""
    world = segments_world(org)
    with tenant_context(org):
        for i, c in enumerate(world["customers"]):
            Customer.objects.filter(pk=c.pk).update(attributes={"visits": i % 7 + 10 * (i < 25)})
    return world


def _lookalike(org, owner, name="Like them", **definition) -> Audience:
    with tenant_context(org):
        return audience_create(
            organization=org,
            name=name,
            definition={"kind": "lookalike", **definition},
            user=owner,
            sync=True,
        )


def _erase(org, owner, external_id: str) -> Customer:
    with tenant_context(org):
        person = Customer.objects.get(external_id=external_id)
        customer_erase(customer=person, actor=owner)
    return person


def _builds(org, audience) -> list[Job]:
    with tenant_context(org):
        return list(
            Job.objects.filter(kind="audience", params__audience_id=audience.pk).order_by("pk")
        )


def _fresh(org, audience) -> Audience:
    with tenant_context(org):
        return Audience.objects.get(pk=audience.pk)


def test_an_erased_seed_leaves_the_list_and_the_audience_is_rebuilt(
    org, owner, shop, django_capture_on_commit_callbacks
):
    audience = _lookalike(org, owner, seed_customer_ids=["C001", "C002", "C003", "NOPE"])
    assert audience.status == AudienceStatus.READY and audience.size == 37
    with django_capture_on_commit_callbacks(execute=True):
        person = _erase(org, owner, "C002")
    after = _fresh(org, audience)
    assert after.definition["seed_customer_ids"] == ["C001", "C003", "NOPE"]
    assert "C002" not in repr(after.definition) + repr(after.notes) + after.message
    # rebuilt (its members were ranked by likeness to the erased person too): the
    # rebuild's job was sent once the erasure committed, and ran
    builds = _builds(org, audience)
    assert len(builds) == 2 and builds[-1].status == JobStatus.SUCCEEDED
    assert after.status == AudienceStatus.READY and after.size == 37  # 40 less 2 seeds, 1 erased
    with tenant_context(org):
        members = set(AudienceMember.objects.filter(audience=audience).values_list("customer_id"))
    assert (person.pk,) not in members


def test_a_seed_segment_stays_the_seed_when_the_listed_seeds_go(org, owner, shop):
    audience = _lookalike(org, owner, seed_segment_id=shop["a"].pk, seed_customer_ids=["C030"])
    _erase(org, owner, "C030")
    after = _fresh(org, audience)
    # the form a saved definition takes (no empty list beside a segment)
    assert after.definition == {"kind": "lookalike", "seed_segment_id": shop["a"].pk}
    assert after.status == AudienceStatus.BUILDING and len(_builds(org, audience)) == 2


def test_an_audience_whose_seeds_were_all_erased_needs_new_ones(org, owner, shop, api):
    audience = _lookalike(org, owner, seed_customer_ids=["C001", "C002"], size=10)
    assert _members(org, audience) == 10
    _erase(org, owner, "C001")
    _erase(org, owner, "C002")
    after = _fresh(org, audience)
    assert after.definition == {"kind": "lookalike", "seed_customer_ids": [], "size": 10}
    assert after.status == AudienceStatus.FAILED and after.message == SEEDS_ERASED
    # members and figures were worked out from the erased people alone
    assert _members(org, audience) == 0
    assert (after.size, after.reachable_email, after.model, after.fairness) == (0, 0, None, [])
    assert len(_builds(org, audience)) == 2  # the second erasure started no build
    shown = api.get(f"/api/v1/audiences/{audience.pk}/").json()
    assert shown["status"] == "failed" and shown["message"] == SEEDS_ERASED
    assert shown["definition"]["seed_customer_ids"] == []

    # every rebuild says so again (not "name a seed")
    with tenant_context(org):
        assert audiences_refresh_all() == {"rebuilt": 0, "failed": 1}
    assert _fresh(org, audience).message == SEEDS_ERASED
    rebuilt = api.post(f"/api/v1/audiences/{audience.pk}/rebuild/")
    assert rebuilt.status_code == 202
    assert _fresh(org, audience).message == SEEDS_ERASED

    # new seeds make it an audience again
    with tenant_context(org):
        audience_update(
            organization=org,
            audience=after,
            definition={"kind": "lookalike", "seed_customer_ids": ["C003"], "size": 10},
            user=owner,
            sync=True,
        )
    again = _fresh(org, audience)
    assert again.status == AudienceStatus.READY and again.size == 10 and again.message == ""


def test_a_build_still_queued_is_not_doubled(org, owner, shop):
    _lookalike(org, owner, seed_customer_ids=["C001", "C002"])
    with tenant_context(org):
        # saved, its build queued (sent when the transaction commits: not in a test)
        queued = audience_create(
            organization=org,
            name="Queued",
            definition={"kind": "lookalike", "seed_customer_ids": ["C001", "C004"]},
        )
    _erase(org, owner, "C001")
    assert _fresh(org, queued).definition["seed_customer_ids"] == ["C004"]
    assert len(_builds(org, queued)) == 1  # it reads the new seeds when it starts


@pytest.mark.parametrize("seeds", [["C001"], ["C001", "C002"]])
@pytest.mark.parametrize("how", ["job", "pipeline"])
def test_a_build_running_during_the_erasure_publishes_nothing(
    org, owner, shop, monkeypatch, seeds, how
):
    """The erasure lands while a build evaluates the old seeds: with a seed left, the
    build started by the erasure publishes; with none, the audience needs new seeds.
    The running build's members, and its failure naming the erased id, are not kept."""
    from audiences import services

    audience = _lookalike(org, owner, seed_customer_ids=seeds, size=5)
    evaluate = services._evaluate

    def erased_meanwhile(definition, **kw):
        _erase(org, owner, "C001")
        return evaluate(definition, **kw)

    monkeypatch.setattr(services, "_evaluate", erased_meanwhile)
    with tenant_context(org):
        before = set(AudienceMember.objects.filter(audience=audience).values_list("customer_id"))
        if how == "job":
            audience_build(audience_id=audience.pk)
        else:
            audiences_refresh_all()
        after = _fresh(org, audience)
        kept = set(AudienceMember.objects.filter(audience=audience).values_list("customer_id"))
    assert "C001" not in after.message + repr(after.notes)
    if len(seeds) == 1:
        assert after.status == AudienceStatus.FAILED and after.message == SEEDS_ERASED
        assert kept == set()
    else:  # the erasure's own build comes next (sent when it commits)
        assert after.status == AudienceStatus.BUILDING and len(_builds(org, audience)) == 2
        assert kept == before - {(_erased_id(org),)}


def _erased_id(org) -> int:
    with tenant_context(org):
        return Customer.objects.get(erased_at__isnull=False).pk


def _members(org, audience) -> int:
    with tenant_context(org):
        return AudienceMember.objects.filter(audience=audience).count()


def test_a_note_naming_the_erased_id_goes(org, owner, shop):
    """A seed id the last build did not find (imported since) is named in its notes."""
    audience = _lookalike(org, owner, seed_customer_ids=["C001", "LATE1"])
    assert any("LATE1" in note for note in _fresh(org, audience).notes)
    with tenant_context(org):
        Customer.objects.create(organization=org, external_id="LATE1", email="late@example.com")
    _erase(org, owner, "LATE1")
    after = _fresh(org, audience)
    assert "LATE1" not in repr(after.definition) + repr(after.notes)


def test_other_organisations_seed_lists_are_theirs(org, other_org, owner, shop):
    """External ids are the shops' own: another shop's "C001" is someone else."""
    with tenant_context(other_org):
        Customer.objects.create(organization=other_org, external_id="C001")
        theirs = Audience.objects.create(
            organization=other_org,
            name="Theirs",
            definition={"kind": "lookalike", "seed_customer_ids": ["C001"]},
            status=AudienceStatus.READY,
        )
    _erase(org, owner, "C001")
    after = _fresh(other_org, theirs)
    assert after.definition["seed_customer_ids"] == ["C001"]
    assert after.status == AudienceStatus.READY
