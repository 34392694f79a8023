"""The loyalty page's figures (loyalty/pages.py) equal planted data: members per
tier, movement between tiers by month, revenue by tier in the period; the
starter suggestion and the programme in plain words."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.tests.factories import CustomerFactory, OrderFactory
from loyalty import pages
from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier, TierChange

AS_OF = dt.date(2026, 6, 30)


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def plant(org, *, scale: int = 1) -> dict:
    """A programme (Bronze 0, Silver 100, Gold 500 spent in 365 days) with known
    members, orders and tier changes. `scale` multiplies the amounts, so another
    organisation's figures differ."""
    with tenant_context(org):
        program = LoyaltyProgram.objects.create(
            organization=org,
            metric="spend",
            period_days=365,
            points_per_unit=1,
            reward_points=500,
            reward_value=5,
            computed_at=_at(AS_OF),
            as_of=AS_OF,
        )
        bronze, silver, gold = (
            LoyaltyTier.objects.create(
                organization=org, program=program, name=n, threshold=t, position=i
            )
            for i, (n, t) in enumerate((("Bronze", 0), ("Silver", 100), ("Gold", 500)))
        )
        people: dict[str, list] = {"Gold": [], "Silver": [], "Bronze": [], "none": []}
        for tier, n in ((gold, 3), (silver, 2), (bronze, 1)):
            for _ in range(n):
                c = CustomerFactory(organization=org)
                LoyaltyAccount.objects.create(
                    organization=org, customer=c, tier=tier, tier_since=AS_OF
                )
                people[tier.name].append(c)
        lapsed = CustomerFactory(organization=org)  # an account without a tier
        LoyaltyAccount.objects.create(organization=org, customer=lapsed, tier=None)
        people["none"] = [lapsed, CustomerFactory(organization=org)]  # and no account

        def order(c, day, total, **kw):
            OrderFactory(
                organization=org, customer=c, ordered_at=_at(day), total=Decimal(total), **kw
            )

        g1, g2, g3 = people["Gold"]
        order(g1, dt.date(2026, 6, 1), 300 * scale)
        order(g1, dt.date(2026, 1, 10), 250 * scale)
        order(g2, dt.date(2025, 7, 1), 600 * scale)  # first day of the period
        order(g2, dt.date(2026, 2, 1), -40 * scale, is_return=True)  # a return counts back
        order(g3, dt.date(2025, 6, 30), 999)  # the day before the period: left out
        order(g3, dt.date(2026, 3, 3), 510 * scale)
        order(g3, dt.date(2026, 3, 4), 77, currency="EUR")  # another currency: left out
        order(g3, dt.date(2026, 3, 5), 88, status="cancelled")  # not paid: left out
        s1, s2 = people["Silver"]
        order(s1, dt.date(2026, 4, 4), 120 * scale)
        order(s2, dt.date(2026, 5, 5), 150 * scale)
        order(people["Bronze"][0], dt.date(2026, 6, 6), 20 * scale)
        order(lapsed, dt.date(2026, 6, 7), 5 * scale)
        order(g1, dt.date(2026, 7, 1), 1000)  # after the cut-off: left out

        def change(c, day, frm, to, up):
            TierChange.objects.create(
                organization=org, customer=c, from_tier=frm, to_tier=to, up=up, changed_on=day
            )

        change(g1, dt.date(2026, 3, 2), "Silver", "Gold", True)
        change(g2, dt.date(2026, 3, 20), "", "Gold", True)
        change(lapsed, dt.date(2026, 3, 31), "Bronze", "", False)
        change(s1, dt.date(2026, 5, 1), "Bronze", "Silver", True)
    return {"program": program, "people": people}


@pytest.fixture
def planted(org):
    org.currency = "GBP"
    org.time_zone = "Europe/London"
    org.save()
    return plant(org)


def test_members_revenue_and_no_tier_equal_the_planted_data(org, planted):
    with tenant_context(org):
        f = pages.tier_figures(program=planted["program"], organization=org)
    rows = {r["tier"].name: r for r in f["rows"]}
    assert [r["tier"].name for r in f["rows"]] == ["Gold", "Silver", "Bronze"]
    assert {n: r["members"] for n, r in rows.items()} == {"Gold": 3, "Silver": 2, "Bronze": 1}
    assert f["customers"] == 8 and f["members"] == 6 and f["no_tier"] == 2
    # Gold: 300 + 250 + 600 - 40 + 510 (the day before the period, another currency,
    # a cancelled order and an order after the cut-off are left out)
    assert rows["Gold"]["revenue"] == Decimal(1620)
    assert rows["Gold"]["per_member"] == Decimal(540)
    assert rows["Silver"]["revenue"] == Decimal(270)
    assert rows["Bronze"]["revenue"] == Decimal(20)
    assert f["no_tier_revenue"] == Decimal(5)
    assert f["total_revenue"] == Decimal(1915)
    assert rows["Gold"]["width"] == 100.0


def test_movement_counts_up_and_down_per_month_with_empty_months_filled(org, planted):
    with tenant_context(org):
        m = pages.movement()
    months = [(d["month"], d["up"], d["down"], d["joined"]) for d in m["months"]]
    assert months == [
        (dt.date(2026, 3, 1), 1, 1, 1),  # Silver -> Gold; Bronze -> none; none -> Gold
        (dt.date(2026, 4, 1), 0, 0, 0),
        (dt.date(2026, 5, 1), 1, 0, 0),
    ]
    assert (m["up"], m["down"], m["joined"]) == (2, 1, 1)


def test_page_shows_the_planted_figures_and_actions(org, planted, owner_client):
    page = owner_client.get(reverse("loyalty:page")).content.decode()
    members = dict(re.findall(r'<li data-tier="([^"]*)" data-members="(\d+)"', page))
    assert members == {"Gold": "3", "Silver": "2", "Bronze": "1", "": "2"}
    revenue = {
        tier: Decimal(value)
        for tier, value in re.findall(
            r'<tr data-tier="([^"]*)">.*?data-revenue="([^"]+)"', page, re.S
        )
    }
    assert revenue == {
        "Gold": Decimal(1620),
        "Silver": Decimal(270),
        "Bronze": Decimal(20),
        "": Decimal(5),
    }
    assert "£1,620" in page and "£540.00" in page  # revenue and per member
    moves = re.findall(
        r'<tr data-month="([\d-]+)"><th scope="row">[^<]+</th><td class="num">(\d+)</td>'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        page,
    )
    assert moves == [
        ("2026-03", "1", "1", "1"),
        ("2026-04", "0", "0", "0"),
        ("2026-05", "1", "0", "0"),
    ]
    # the programme in plain words
    assert "Customers reach Silver after spending £100 in the last 12 months." in page
    assert "They earn 1 point per £1 spent" in page
    assert "500 points can be exchanged for £5 off" in page
    # actions next to the insights
    assert reverse("campaigns:automation_new") in page
    assert reverse("campaigns:new") in page
    assert reverse("loyalty:recompute") in page
    assert "Thank your Gold members" in page


def test_programme_sentence_counts_orders(org):
    program = LoyaltyProgram(metric="orders", period_days=90, points_per_unit=Decimal("2.5"))
    tiers = [LoyaltyTier(name="Regular", threshold=3), LoyaltyTier(name="Star", threshold=1)]
    lines = pages.program_sentences(program, tiers, "USD")
    assert lines[0] == "Customers reach Regular after placing 3 orders in the last 90 days."
    assert lines[1] == "Customers reach Star after placing 1 order in the last 90 days."
    assert lines[2].startswith("They earn 2.5 points per $1 spent")


def test_money_words():
    assert pages.money(Decimal("1200"), "GBP") == "£1,200"
    assert pages.money(Decimal("12.5"), "EUR") == "€12.50"
    assert pages.money(Decimal("7"), "SEK") == "7 SEK"
    assert pages.remaining_words(Decimal("42"), "spend", "GBP") == "£42 more"
    assert pages.remaining_words(Decimal("1"), "orders", "GBP") == "1 more order"
    assert pages.friendly(Decimal("187.3")) == Decimal(190)
    assert pages.friendly(Decimal("1234")) == Decimal(1200)


def test_suggestion_follows_the_shops_own_spend(org):
    org.currency = "GBP"
    org.save()
    with tenant_context(org):
        # 20 customers spending 10, 20, ..., 200 in the last year
        for i in range(1, 21):
            OrderFactory(
                organization=org,
                customer=CustomerFactory(organization=org),
                total=Decimal(10 * i),
                ordered_at=_at(dt.date(2026, 6, 1)),
            )
        s = pages.suggestion(organization=org)
    assert s is not None
    assert [t["name"] for t in s["tiers"]] == ["Bronze", "Silver", "Gold"]
    # sorted spends: index int(q * 20) -> 110 (q .5), 170 (q .8), 200 (q .95)
    assert [t["threshold"] for t in s["tiers"]] == [Decimal(110), Decimal(170), Decimal(200)]
    assert [t["customers"] for t in s["tiers"]] == [10, 4, 1]


def test_no_suggestion_for_a_handful_of_customers(org):
    with tenant_context(org):
        OrderFactory(organization=org, customer=CustomerFactory(organization=org))
        assert pages.suggestion(organization=org) is None
