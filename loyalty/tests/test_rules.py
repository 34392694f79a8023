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
