"""Offers: every field is checked with the field named; a build picks exactly
round(share × n) hold-out members at random (reproducibly), gives each recipient
one unique code, keeps codes across rebuilds, runs the fairness check; the
override is audited; in-use offers refuse changes to who gets them; the loyalty
reward offer stays hidden."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from offers import selectors
from offers.models import Offer, OfferRecipient, OfferRedemption, OfferStatus
from offers.services import (
    issue_reward_code,
    offer_create,
    offer_delete,
    offer_override_fairness,
    offer_rebuild,
    offer_send_problem,
    offer_update,
    split_holdout,
)
from offers.tests.factories import make_order, segment_add, segment_remove, segment_world


@pytest.fixture
def world(org):
    return segment_world(org, n=40)


def _create(org, world, **data):
    base = {
        "name": "Spring 10%",
        "kind": "percent",
        "value": 10,
        "segment_ids": [world["segment"].pk],
    }
    return offer_create(organization=org, data={**base, **data}, sync=True)


def _codes(offer) -> dict[int, str]:
    return dict(
        OfferRecipient.objects.filter(offer=offer, holdout=False).values_list("customer_id", "code")
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "  "}, "name"),
        ({"kind": "bogof"}, "kind"),
        ({"value": 0}, "value"),
        ({"value": 150}, "value"),
        ({"value": "ten"}, "value"),
        ({"kind": "amount", "value": -5}, "value"),
        ({"kind": "product", "value": "NO-SUCH-SKU"}, "value"),
        ({"kind": "free_shipping", "value": 5}, "value"),
        ({"segment_ids": []}, "segment_ids"),
        ({"segment_ids": ["x"]}, "segment_ids"),
        ({"segment_ids": [999999]}, "segment_ids"),
        ({"segment_ids": None, "audience_id": 999999}, "audience_id"),
        ({"code_mode": "personal"}, "code_mode"),
        ({"holdout_share": 0.6}, "holdout_share"),
        ({"holdout_share": -0.1}, "holdout_share"),
        ({"max_redemptions_per_code": 0}, "max_redemptions_per_code"),
        ({"max_redemptions_total": 2.5}, "max_redemptions_total"),
        ({"min_basket": -1}, "min_basket"),
        ({"categories": "shoes"}, "categories"),
        ({"starts_at": "next tuesday"}, "starts_at"),
        ({"starts_at": "2025-05-10", "ends_at": "2025-05-01"}, "ends_at"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(org, world, data, field):
    with tenant_context(org), pytest.raises(ApplicationError) as caught:
        _create(org, world, **data)
    assert field in caught.value.extra["fields"], caught.value.message
    with tenant_context(org):
        assert not Offer.objects.exists()


def test_another_organisations_segment_and_audience_are_refused(org, other_org, world):
    from audiences.models import Audience

    theirs = segment_world(other_org, n=2, prefix="T")
    with tenant_context(other_org):
        audience = Audience.objects.create(
            organization=other_org, name="Theirs", definition={"kind": "segments"}
        )
    with tenant_context(org):
        with pytest.raises(ApplicationError) as caught:
            _create(org, world, segment_ids=[theirs["segment"].pk])
        assert "segment_ids" in caught.value.extra["fields"]
        with pytest.raises(ApplicationError) as caught:
            _create(org, world, segment_ids=None, audience_id=audience.pk)
        assert "audience_id" in caught.value.extra["fields"]


def test_names_are_unique_within_the_organisation(org, world):
    with tenant_context(org):
        _create(org, world)
        with pytest.raises(ApplicationError) as caught:
            _create(org, world, name="spring 10%")
        assert "name" in caught.value.extra["fields"]


def test_naive_times_are_read_in_the_organisations_zone(org, world):
    org.time_zone = "Europe/London"
    org.save()
    with tenant_context(org):
        offer = _create(org, world, starts_at="2025-06-01T09:00", ends_at="2025-06-30")
    assert offer.starts_at == dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)  # BST
    assert offer.ends_at == dt.datetime(2025, 6, 29, 23, 0, tzinfo=dt.UTC)


def test_a_build_keeps_back_exactly_the_share_and_gives_everyone_else_one_code(org, world):
    with tenant_context(org):
        offer = _create(org, world, holdout_share=0.25)
        assert offer.status == OfferStatus.READY, offer.message
        assert offer.job is not None and offer.job.kind == "offer"
        rows = list(OfferRecipient.objects.filter(offer=offer))
    held = [r for r in rows if r.holdout]
    given = [r for r in rows if not r.holdout]
    assert len(rows) == 40
    assert len(held) == offer.holdout_count == 10  # round(0.25 × 40)
    assert len(given) == offer.recipients_count == 30
    assert all(r.code == "" for r in held)
    assert len({r.code for r in given}) == 30 and all(r.code for r in given)
    with tenant_context(org):
        assert AuditLogEntry.objects.filter(action="offer.created").count() == 1
        assert selectors.holdout_ids(offer=offer) == {r.customer_id for r in held}
        codes = selectors.customer_codes(offer=offer, customer_ids=[r.customer_id for r in rows])
    assert codes == {r.customer_id: r.code for r in given}


def test_the_holdout_is_random_but_reproducible_from_the_offer():
    ids = list(range(1000, 1100))
    first = split_holdout(ids, share=0.1, seed=7)
    assert len(first) == 10
    assert split_holdout(ids, share=0.1, seed=7) == first
    assert split_holdout(ids, share=0.1, seed=8) != first
    # not simply the first or last ids
    assert first != set(ids[:10]) and first != set(ids[-10:])
    assert len(split_holdout(ids, share=0.125, seed=1)) == 13  # 12.5 rounds up
    assert split_holdout(ids, share=0, seed=1) == set()


def test_erased_customers_get_no_code(org, world):
    from customers.models import Customer

    with tenant_context(org):
        Customer.objects.filter(pk=world["customers"][0].pk).update(
            erased_at=dt.datetime.now(dt.UTC)
        )
        offer = _create(org, world, holdout_share=0)
        assert not OfferRecipient.objects.filter(
            offer=offer, customer=world["customers"][0]
        ).exists()
    assert offer.recipients_count == 39


def test_rebuild_keeps_the_codes_of_customers_who_stay(org, world):
    from customers.models import Customer

    with tenant_context(org):
        offer = _create(org, world)
        before = _codes(offer)
        held_before = selectors.holdout_ids(offer=offer)
        # same members: the same hold-out and the same codes
        offer_rebuild(organization=org, offer=offer, sync=True)
        assert _codes(offer) == before
        assert selectors.holdout_ids(offer=offer) == held_before
        # two leave, ten join
        leaving = [c for c in world["customers"] if c.pk in before][:2]
        segment_remove(org, world, leaving)
        newcomers = [
            Customer.objects.create(organization=org, external_id=f"N{i}") for i in range(10)
        ]
        segment_add(org, world, newcomers)
        offer = offer_rebuild(organization=org, offer=offer, sync=True)
        after = _codes(offer)
    stayed = set(before) - {c.pk for c in leaving}
    assert {cid: after[cid] for cid in stayed} == {cid: before[cid] for cid in stayed}
    assert not set(after) & {c.pk for c in leaving}
    assert offer.holdout_count == 5  # round(0.1 × 48), all drawn from the newcomers
    assert offer.recipients_count == 43


def test_once_a_code_is_used_leavers_keep_their_code(org, world):
    with tenant_context(org):
        offer = _create(org, world)
        codes = _codes(offer)
        user_id = next(iter(codes))
        customer = next(c for c in world["customers"] if c.pk == user_id)
        make_order(org, customer, code=codes[user_id])
        from offers.redemption import redemptions_refresh

        redemptions_refresh(organization=org)
        segment_remove(org, world, [customer])
        offer = offer_rebuild(organization=org, offer=offer, sync=True)
        assert _codes(offer)[user_id] == codes[user_id]


def test_shared_mode_gives_one_code_that_collides_with_no_other(org, world):
    with tenant_context(org):
        unique = _create(org, world)
        shared = _create(org, world, name="Everyone", code_mode="shared", holdout_share=0.5)
        assert shared.shared_code and shared.shared_code not in _codes(unique).values()
        assert set(_codes(shared).values()) == {""}
        ids = [c.pk for c in world["customers"]]
        given = selectors.customer_codes(offer=shared, customer_ids=ids)
    assert len(given) == 20 and set(given.values()) == {shared.shared_code}


def test_an_empty_target_fails_the_build_with_the_reason(org, world):
    with tenant_context(org):
        segment_remove(org, world, world["customers"])
        offer = _create(org, world)
        assert offer.job.status == "failed"
    assert offer.status == OfferStatus.FAILED
    assert "Nobody" in offer.message
    assert "could not be built" in offer_send_problem(offer=offer)


# --- fairness -----------------------------------------------------------------------------
@pytest.fixture
def skewed(org):
    """100 customers, half women, half men; the segment "Regulars S" is 95% women."""
    everyone = segment_world(org, n=0, prefix="S")
    from customers.models import Customer

    with tenant_context(org):
        women = [
            Customer.objects.create(organization=org, external_id=f"W{i}", gender="female")
            for i in range(50)
        ]
        men = [
            Customer.objects.create(organization=org, external_id=f"M{i}", gender="male")
            for i in range(50)
        ]
    segment_add(org, everyone, women[:38] + men[:2])
    return {**everyone, "women": women, "men": men}


def test_the_fairness_flag_fires_on_a_skewed_audience_and_blocks_sending(org, skewed):
    with tenant_context(org):
        offer = _create(org, skewed, holdout_share=0)
    assert offer.fairness_flagged
    warned = [r for r in offer.fairness if r["warning"]]
    assert [r["group"].lower() for r in warned] == ["male"]
    assert not offer.sendable
    assert "fairness" in offer_send_problem(offer=offer)


def test_a_balanced_audience_is_not_flagged(org, skewed):
    with tenant_context(org):
        segment_add(org, skewed, skewed["men"][2:38])
        offer = _create(org, skewed, holdout_share=0)
    assert not offer.fairness_flagged
    assert offer_send_problem(offer=offer) is None
    with tenant_context(org), pytest.raises(ApplicationError) as caught:
        offer_override_fairness(
            organization=org, offer=offer, reason="Because we want to.", user=None
        )
    assert caught.value.status == 409


def test_the_override_needs_a_real_reason_and_is_audited(org, skewed, owner):
    with tenant_context(org):
        offer = _create(org, skewed, holdout_share=0)
        with pytest.raises(ApplicationError) as caught:
            offer_override_fairness(organization=org, offer=offer, reason="   ok    ", user=owner)
        assert "reason" in caught.value.extra["fields"]
        assert not AuditLogEntry.objects.filter(action="offer.fairness_override").exists()
        reason = "  Mother's Day gift offer: the campaign is for gift buyers.  "
        offer = offer_override_fairness(organization=org, offer=offer, reason=reason, user=owner)
        entry = AuditLogEntry.objects.get(action="offer.fairness_override")
    assert offer.override_reason == reason.strip()
    assert offer.override_by == owner and offer.override_at is not None
    assert offer.sendable and offer_send_problem(offer=offer) is None
    assert entry.details["reason"] == reason.strip()
    assert entry.actor == owner
    assert entry.details["offer_id"] == offer.pk


# --- changes once in use --------------------------------------------------------------------
def test_changing_who_gets_it_rebuilds_until_a_code_is_used(org, world):
    other = segment_world(org, n=6, prefix="X")
    with tenant_context(org):
        offer = _create(org, world)
        offer = offer_update(
            organization=org, offer=offer, data={"segment_ids": [other["segment"].pk]}
        )
        assert offer.status == OfferStatus.BUILDING  # the job starts when the change commits
        offer = offer_rebuild(organization=org, offer=offer, sync=True)
        assert offer.recipients_count + offer.holdout_count == 6
        codes = _codes(offer)
        customer = next(c for c in other["customers"] if c.pk in codes)
        make_order(org, customer, code=codes[customer.pk].lower())
        from offers.redemption import redemptions_refresh

        redemptions_refresh(organization=org)
        with pytest.raises(ApplicationError) as caught:
            offer_update(organization=org, offer=offer, data={"value": 20})
        assert caught.value.status == 409 and "value" in caught.value.extra["fields"]
        assert "used" in caught.value.message
        # the name, the end and the limits still change
        offer = offer_update(
            organization=org,
            offer=offer,
            data={
                "name": "Spring 10% (extended)",
                "ends_at": "2099-01-01",
                "max_redemptions_total": 5,
            },
        )
    assert offer.name == "Spring 10% (extended)" and offer.max_redemptions_total == 5
    assert offer.status == OfferStatus.READY


def test_a_campaign_sending_the_offer_fixes_it_and_blocks_deleting(org, world):
    from campaigns.models import Campaign

    with tenant_context(org):
        offer = _create(org, world)
        campaign = Campaign.objects.create(
            organization=org, name="Spring", offer_id=offer.pk, status="sent"
        )
        with pytest.raises(ApplicationError) as caught:
            offer_update(organization=org, offer=offer, data={"holdout_share": 0.2})
        assert "campaign" in caught.value.message
        with pytest.raises(ApplicationError):
            offer_delete(organization=org, offer=offer)
        assert Offer.objects.filter(pk=offer.pk).exists()
        Campaign.objects.filter(pk=campaign.pk).update(status="draft")
        offer_delete(organization=org, offer=offer)
        assert not Offer.objects.filter(pk=offer.pk).exists()
        assert not OfferRecipient.objects.exists()


def test_an_ended_offer_cannot_be_sent(org, world):
    with tenant_context(org):
        offer = _create(org, world, starts_at="2020-01-01", ends_at="2020-02-01")
    assert "ended" in offer_send_problem(offer=offer)


# --- loyalty rewards ------------------------------------------------------------------------
def test_reward_codes_come_from_hidden_offers_one_per_value(org, world):
    customer = world["customers"][0]
    with tenant_context(org):
        first = issue_reward_code(organization=org, customer=customer, value=5)
        second = issue_reward_code(organization=org, customer=customer, value="5.00")
        third = issue_reward_code(organization=org, customer=customer, value=10)
        rewards = Offer.objects.filter(is_reward=True).order_by("pk")
        assert [o.name for o in rewards] == ["Loyalty reward 5.00", "Loyalty reward 10.00"]
        assert len({first, second, third}) == 3
        assert rewards[0].status == OfferStatus.READY and rewards[0].holdout_share == 0
        assert rewards[0].recipients.count() == 2
        assert not selectors.offers_list().filter(is_reward=True).exists()
        # the customer's code works: an order with it redeems the reward
        make_order(org, customer, code=first, amount=30)
        from offers.redemption import redemptions_refresh

        redemptions_refresh(organization=org)
        used = OfferRedemption.objects.get()
    assert used.offer_id == rewards[0].pk and used.counted and used.discount == 5
