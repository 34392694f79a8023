"""Rule fields the loyalty capability declares: a customer's tier and points, so a
rule segment or a rules audience can pick "Gold members" or "500 points or more"."""

from __future__ import annotations

from segmentation.services import rules

from .models import LoyaltyAccount, LoyaltyTier


def _accounts():
    return LoyaltyAccount.objects.all()


def _tier_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in LoyaltyTier.objects.values_list("name", flat=True)]


_RULE_FIELDS = (
    rules.related_value_field(
        name="loyalty_tier",
        label="Loyalty tier",
        type="choice",
        queryset=_accounts,
        column="tier__name",
        choices=_tier_choices,
        help="The tier the loyalty programme places the customer in.",
        group="Loyalty",
    ),
    rules.related_value_field(
        name="loyalty_points",
        label="Loyalty points",
        type="number",
        queryset=_accounts,
        column="points",
        help="Points to spend: earned on net spend, minus points exchanged.",
        group="Loyalty",
    ),
)


def loyalty_rule_fields() -> tuple[rules.RuleField, ...]:
    return _RULE_FIELDS
