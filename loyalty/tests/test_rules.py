"""A rule can pick customers by loyalty tier and points."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer
from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier
from segmentation.services import rules

pytestmark = pytest.mark.django_db


def test_rules_pick_customers_by_tier_and_points(org):
    with tenant_context(org):
        program = LoyaltyProgram.objects.create(organization=org)
        silver = LoyaltyTier.objects.create(
            organization=org, program=program, name="Silver", threshold=100, position=0
        )
        gold = LoyaltyTier.objects.create(
            organization=org, program=program, name="Gold", threshold=500, position=1
        )
        people = [Customer.objects.create(organization=org, external_id=f"c{i}") for i in range(4)]
        for person, tier, points in zip(
            people, (gold, silver, None, gold), (900, 120, 5, 40), strict=True
        ):
            LoyaltyAccount.objects.create(
                organization=org, customer=person, tier=tier, points=points
            )
        fields = rules.rule_fields()
        assert ("Gold", "Gold") in fields["loyalty_tier"].choices()
        context = rules.RuleContext(reference_date=None, live_run_id=None)
        gold_q = fields["loyalty_tier"].to_q("in", ["Gold"], context)
        assert set(Customer.objects.filter(gold_q)) == {people[0], people[3]}
        rich = fields["loyalty_points"].to_q("gte", 100, context)
        assert set(Customer.objects.filter(rich)) == {people[0], people[1]}


def test_the_loyalty_page_makes_an_audience_of_a_tier(org, owner_client):
    from audiences.models import Audience

    with tenant_context(org):
        program = LoyaltyProgram.objects.create(organization=org)
        gold = LoyaltyTier.objects.create(
            organization=org, program=program, name="Gold", threshold=500
        )
    url = f"/loyalty/tiers/{gold.pk}/audience/"
    first = owner_client.post(url)
    with tenant_context(org):
        audience = Audience.objects.get()
    assert first.status_code == 302 and first["Location"] == f"/audiences/{audience.pk}/"
    assert audience.name == "Gold members" and audience.definition["kind"] == "rules"
    assert audience.definition["rule"]["conditions"][0]["field"] == "loyalty_tier"
    # the same audience again, not a copy
    owner_client.post(url)
    with tenant_context(org):
        assert Audience.objects.count() == 1


def test_another_organisations_tier_is_404(org, other_org, client, make_member):
    with tenant_context(other_org):
        program = LoyaltyProgram.objects.create(organization=other_org)
        theirs = LoyaltyTier.objects.create(
            organization=other_org, program=program, name="Gold", threshold=500
        )
    from accounts.models import Role

    client.force_login(make_member(org, Role.MARKETER))
    assert client.post(f"/loyalty/tiers/{theirs.pk}/audience/").status_code == 404
