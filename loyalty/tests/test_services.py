"""Loyalty services on the database: the programme's rules, placing customers in the
organisation's time zone, returns, idempotency, tier-change events that automations
use, and exchanging points for a reward code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Organization
from core.exceptions import ApplicationError
from core.models import Job, JobStatus
from customers.models import Customer, Event, Order
from loyalty import selectors, services
from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier, PointsRedemption, TierChange

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2026, 6, 30)
LADDER = [
    {"name": "Bronze", "threshold": 0},
    {"name": "Silver", "threshold": 100},
    {"name": "Gold", "threshold": 500},
]


def person(org, name: str) -> Customer:
    return Customer.objects.create(
        organization=org,
        external_id=name,
        email=f"{name}@example.com",
        first_name=name.title(),
        accepts_email=True,
    )


_n = iter(range(1, 10**6))


def order(org, customer, at, total, *, is_return=False, status="paid", currency=""):
    """An order at `at` (aware, or naive in UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return Order.objects.create(
        organization=org,
        external_id=f"o{next(_n)}",
        customer=customer,
        ordered_at=at,
        total=Decimal(str(total)),
        is_return=is_return,
        status=status,
        currency=currency,
    )


def save(org, **data):
    base = {"metric": "spend", "period_days": 30, "points_per_unit": 1, "tiers": LADDER}
    program, _ = services.program_save(organization=org, data={**base, **data})
    return program


def refresh(org, as_of=AS_OF):
    return services.loyalty_refresh(organization=org, as_of=as_of)


def tier_of(customer) -> str | None:
    account = LoyaltyAccount.objects.filter(customer=customer).select_related("tier").first()
    return account.tier.name if account and account.tier else None


def test_spend_tiers_and_points_with_returns(in_org):
    org = in_org
    gold, silver, dropped = person(org, "gold"), person(org, "silver"), person(org, "dropped")
    order(org, gold, dt.datetime(2026, 6, 10, 12), "600")
    order(org, silver, dt.datetime(2026, 6, 10, 12), "150")
    order(org, dropped, dt.datetime(2026, 6, 10, 12), "520")
    order(org, dropped, dt.datetime(2026, 6, 20, 12), "-450", is_return=True)  # back to 70
    order(org, silver, dt.datetime(2026, 6, 11, 12), "900", status="cancelled")  # no purchase
    order(org, silver, dt.datetime(2026, 6, 12, 12), "900", status="pending")
    save(org, points_per_unit="2")
    refresh(org)
    assert (tier_of(gold), tier_of(silver), tier_of(dropped)) == ("Gold", "Silver", "Bronze")
    points = dict(LoyaltyAccount.objects.values_list("customer__external_id", "points"))
    assert points == {"gold": 1200, "silver": 300, "dropped": 140}  # 2 × (520 − 450)
    info = selectors.customer_loyalty(customer=silver)
    assert info["tier"] == "Silver" and info["next_tier"] == "Gold"
    assert info["remaining"] == 350.0 and info["metric_value"] == 150.0
    assert info["progress"] == pytest.approx(150 / 500)
    assert info["tier_since"] == AS_OF and info["period_days"] == 30
    assert selectors.tiers_for(customer_ids=[gold.pk, silver.pk]) == {
        gold.pk: "Gold",
        silver.pk: "Silver",
    }
    assert selectors.loyalty_for_customers([gold.pk]) == {
        gold.pk: {"loyalty": {"tier": "Gold", "points": 1200}}
    }


def test_an_order_in_another_currency_counts_as_an_order_but_not_as_spend(in_org):
    org = in_org
    buyer = person(org, "abroad")
    order(org, buyer, dt.datetime(2026, 6, 10, 12), "700", currency="JPY")
    save(org)
    refresh(org)
    assert tier_of(buyer) == "Bronze"
    assert LoyaltyAccount.objects.get(customer=buyer).points == 0
    save(org, metric="orders", tiers=[{"name": "Regular", "threshold": 1}])
    refresh(org)
    assert tier_of(buyer) == "Regular"


def test_orders_metric_ignores_returns_and_zero_orders(in_org):
    org = in_org
    buyer = person(org, "buyer")
    for day in (1, 2):
        order(org, buyer, dt.datetime(2026, 6, day, 12), "30")
    order(org, buyer, dt.datetime(2026, 6, 3, 12), "-30", is_return=True)
    order(org, buyer, dt.datetime(2026, 6, 4, 12), "0")  # a free order is no purchase
    save(
        org,
        metric="orders",
        tiers=[{"name": "Two", "threshold": 2}, {"name": "Three", "threshold": 3}],
    )
    refresh(org)
    assert tier_of(buyer) == "Two"
    assert LoyaltyAccount.objects.get(customer=buyer).metric_value == 2


@pytest.mark.parametrize(
    ("zone", "outside", "inside"),
    [
        # New York (UTC−4 in summer): 23:30 local on the day before the period is the
        # next UTC day, and 23:30 local on as_of is already 1 July in UTC.
        ("America/New_York", dt.datetime(2026, 5, 31, 23, 30), dt.datetime(2026, 6, 30, 23, 30)),
        # Auckland (UTC+12 in June): 00:30 local on 1 June is still 31 May in UTC, and
        # 23:30 local on 31 May is 11:30 UTC on 31 May.
        ("Pacific/Auckland", dt.datetime(2026, 5, 31, 23, 30), dt.datetime(2026, 6, 1, 0, 30)),
    ],
)
def test_the_period_is_counted_in_days_of_the_organisations_time_zone(
    in_org, zone, outside, inside
):
    org = in_org
    Organization.objects.filter(pk=org.pk).update(time_zone=zone)
    org.refresh_from_db()
    tz = __import__("zoneinfo").ZoneInfo(zone)
    early, late = person(org, "early"), person(org, "late")
    order(org, early, outside.replace(tzinfo=tz), "100")
    order(org, late, inside.replace(tzinfo=tz), "100")
    save(org, tiers=[{"name": "Member", "threshold": 100}])
    refresh(org)  # the period is (31 May, 30 June] in local days
    assert tier_of(early) is None
    assert tier_of(late) == "Member"
    # both orders are lifetime spend: points for both
    assert LoyaltyAccount.objects.get(customer=early).points == 100
    assert LoyaltyAccount.objects.get(customer=late).points == 100


def test_the_default_as_of_is_the_latest_data_day_in_the_time_zone(in_org):
    org = in_org
    Organization.objects.filter(pk=org.pk).update(time_zone="America/New_York")
    org.refresh_from_db()
    buyer = person(org, "latest")
    order(org, buyer, dt.datetime(2026, 7, 1, 2, 0), "100")  # 30 June, 22:00 in New York
    save(org)
    result = services.loyalty_refresh(organization=org)
    assert result["as_of"] == "2026-06-30"
    assert LoyaltyProgram.objects.get().as_of == AS_OF


def test_recomputing_is_idempotent(in_org):
    org = in_org
    people = [person(org, f"p{i}") for i in range(3)]
    for i, p in enumerate(people):
        order(org, p, dt.datetime(2026, 6, 10, 12), 60 * (i + 1) ** 2)
    save(org)
    refresh(org)
    order(org, people[0], dt.datetime(2026, 6, 15, 12), "600")  # Bronze → Gold
    first = refresh(org)
    assert first["changes"] == 1 and first["events"] == 1
    state = list(LoyaltyAccount.objects.order_by("pk").values())
    changes, events = TierChange.objects.count(), Event.objects.count()
    again = refresh(org)
    assert again["accounts"] == 0 and again["changes"] == 0 and again["events"] == 0
    assert list(LoyaltyAccount.objects.order_by("pk").values()) == state  # not even touched
    assert (TierChange.objects.count(), Event.objects.count()) == (changes, events)


def test_launching_records_placements_quietly_then_changes_are_events(in_org):
    org = in_org
    riser, faller = person(org, "riser"), person(org, "faller")
    order(org, riser, dt.datetime(2026, 6, 10, 12), "150")
    order(org, faller, dt.datetime(2026, 6, 10, 12), "600")
    save(org)
    launch = refresh(org)
    assert launch["quiet"] and launch["changes"] == 2 and launch["events"] == 0
    assert set(TierChange.objects.values_list("from_tier", "to_tier", "up")) == {
        ("", "Silver", True),
        ("", "Gold", True),
    }
    assert not Event.objects.filter(type="tier_changed").exists()

    order(org, riser, dt.datetime(2026, 7, 2, 12), "400")  # 550 in the period
    order(org, faller, dt.datetime(2026, 7, 2, 12), "-550", is_return=True)  # 50 left
    result = refresh(org, as_of=dt.date(2026, 7, 2))
    assert not result["quiet"] and result["changes"] == 2 and result["events"] == 2
    moves = {c.customer_id: c for c in TierChange.objects.filter(changed_on=dt.date(2026, 7, 2))}
    assert (moves[riser.pk].from_tier, moves[riser.pk].to_tier, moves[riser.pk].up) == (
        "Silver",
        "Gold",
        True,
    )
    assert (moves[faller.pk].from_tier, moves[faller.pk].to_tier, moves[faller.pk].up) == (
        "Gold",
        "Bronze",
        False,
    )
    event = Event.objects.get(type="tier_changed", customer=riser)
    assert event.properties == {
        "tier": "Gold",
        "from": "Silver",
        "up": True,
        "tier_change_id": moves[riser.pk].pk,
    }
    assert LoyaltyAccount.objects.get(customer=riser).tier_since == dt.date(2026, 7, 2)

    # re-shaping the ladder is quiet again: nobody is messaged for the owner's edit
    save(org, tiers=[{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 40}])
    reshaped = refresh(org, as_of=dt.date(2026, 7, 2))
    assert reshaped["quiet"] and reshaped["events"] == 0
    assert tier_of(faller) == "Gold"


def test_an_automation_for_reaching_gold_fires_once(in_org):
    from campaigns import automations
    from campaigns.models import Delivery, DeliveryStatus

    org = in_org
    climber, middling = person(org, "climber"), person(org, "middling")
    order(org, climber, dt.datetime(2026, 6, 1, 12), "50")
    order(org, middling, dt.datetime(2026, 6, 1, 12), "50")
    save(org)
    refresh(org)  # the launch: quiet
    automation = automations.automation_create(
        organization=org,
        data={
            "name": "Welcome to Gold",
            "trigger": {"kind": "tier_changed", "params": {"tier": "Gold"}},
            "message": {"channel": "email", "subject": "Gold!", "body": "Hi {{ first_name }}"},
        },
    )
    order(org, climber, dt.datetime(2026, 6, 20, 12), "500")  # → Gold
    order(org, middling, dt.datetime(2026, 6, 20, 12), "100")  # → Silver only
    refresh(org)
    refresh(org)  # again: no second event
    later = timezone.now() + dt.timedelta(minutes=1)
    automations.automations_evaluate(organization=org, now=later)
    automations.automations_evaluate(organization=org, now=later)
    sent = Delivery.objects.filter(campaign__automation=automation, status=DeliveryStatus.SENT)
    assert list(sent.values_list("customer_id", flat=True)) == [climber.pk]


def test_a_deleted_tier_leaves_customers_re_placed_on_the_next_run(in_org):
    org = in_org
    buyer = person(org, "placed")
    order(org, buyer, dt.datetime(2026, 6, 1, 12), "150")
    save(org)
    refresh(org)
    silver = LoyaltyTier.objects.get(name="Silver")
    save(org, tiers=[{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 500}])
    assert not LoyaltyTier.objects.filter(pk=silver.pk).exists()
    assert tier_of(buyer) is None  # until the next run
    refresh(org)
    assert tier_of(buyer) == "Bronze"
    # the tier whose name stayed is the same row: accounts kept pointing at it
    assert LoyaltyTier.objects.filter(name="Bronze").count() == 1


def test_a_kept_tier_keeps_its_row_when_thresholds_change(in_org):
    org = in_org
    save(org)
    gold = LoyaltyTier.objects.get(name="Gold")
    save(org, tiers=[{"name": "Silver", "threshold": 50}, {"name": "gold", "threshold": 300}])
    gold.refresh_from_db()
    assert (gold.name, gold.threshold, gold.position) == ("gold", Decimal(300), 1)
    assert not LoyaltyTier.objects.filter(name="Bronze").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"metric": "visits"}, "metric"),
        ({"period_days": 0}, "period_days"),
        ({"period_days": 3651}, "period_days"),
        ({"period_days": 1.5}, "period_days"),
        ({"points_per_unit": -1}, "points_per_unit"),
        ({"points_per_unit": "lots"}, "points_per_unit"),
        ({"tiers": []}, "tiers"),
        ({"tiers": [{"name": f"T{i}", "threshold": i} for i in range(11)]}, "tiers"),
        (
            {"tiers": [{"name": "A", "threshold": 0}, {"name": "a", "threshold": 5}]},
            "tiers[1].name",
        ),
        ({"tiers": [{"name": "", "threshold": 0}]}, "tiers[0].name"),
        (
            {"tiers": [{"name": "A", "threshold": 10}, {"name": "B", "threshold": 10}]},
            "tiers[1].threshold",
        ),
        (
            {"tiers": [{"name": "A", "threshold": 10}, {"name": "B", "threshold": 5}]},
            "tiers[1].threshold",
        ),
        ({"tiers": [{"name": "A", "threshold": -1}]}, "tiers[0].threshold"),
        ({"metric": "orders", "tiers": [{"name": "A", "threshold": 2.5}]}, "tiers[0].threshold"),
        ({"reward_points": 0}, "reward_points"),
        ({"reward_value": 0}, "reward_value"),
        ({"active": "yes"}, "active"),
    ],
)
def test_program_save_names_the_field_at_fault(in_org, data, field):
    with pytest.raises(ApplicationError) as failed:
        save(in_org, **data)
    assert field in failed.value.extra["fields"]
    assert not LoyaltyProgram.objects.exists()  # nothing half-written


def test_program_save_is_audited_and_starts_a_job(in_org, marketer):
    from accounts.models import AuditLogEntry

    org = in_org
    buyer = person(org, "job")
    order(org, buyer, dt.datetime(2026, 6, 1, 12), "150")
    program, job = services.program_save(
        organization=org,
        data={"metric": "spend", "tiers": LADDER},
        user=marketer,
        sync=True,
    )
    assert (program.period_days, program.points_per_unit) == (365, Decimal(1))  # defaults
    assert job.kind == "loyalty" and job.status == JobStatus.SUCCEEDED
    assert tier_of(buyer) == "Silver"
    entry = AuditLogEntry.objects.get(action="loyalty.program_created")
    assert entry.actor == marketer and entry.details["tiers"][2] == {
        "name": "Gold",
        "threshold": "500",
    }
    # fields left out keep their value
    program, job = services.program_save(organization=org, data={"period_days": 90}, user=marketer)
    assert program.metric == "spend" and [t.name for t in program.tiers.all()] == [
        "Bronze",
        "Silver",
        "Gold",
    ]
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_step_without_a_programme_says_so(in_org):
    from loyalty.tasks import loyalty_refresh

    job = Job.objects.create(organization=in_org, kind="loyalty", title="Loyalty")
    loyalty_refresh.apply(kwargs={"organization_id": in_org.pk, "job_id": job.pk})
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.message == "No loyalty programme yet."


def test_points_exchange_issues_a_code_and_takes_the_points(in_org, marketer):
    from offers.models import OfferRecipient

    org = in_org
    rich, poor = person(org, "rich"), person(org, "poor")
    order(org, rich, dt.datetime(2026, 6, 1, 12), "250")
    order(org, poor, dt.datetime(2026, 6, 1, 12), "99")
    save(org, reward_points=100, reward_value="5")
    refresh(org)
    with pytest.raises(ApplicationError) as refused:
        services.points_redeem(organization=org, customer=poor, user=marketer)
    assert refused.value.code == "not_enough_points"
    assert "has 99 points; a reward needs 100" in refused.value.message
    redemption = services.points_redeem(organization=org, customer=rich, user=marketer)
    assert redemption.points == 100 and redemption.value == Decimal(5)
    assert OfferRecipient.objects.filter(customer=rich, code=redemption.code).exists()
    account = LoyaltyAccount.objects.get(customer=rich)
    assert (account.points_earned, account.points_redeemed, account.points) == (250, 100, 150)
    services.points_redeem(organization=org, customer=rich, user=marketer)
    with pytest.raises(ApplicationError):  # 50 left
        services.points_redeem(organization=org, customer=rich, user=marketer)
    assert PointsRedemption.objects.filter(customer=rich).count() == 2
    refresh(org)  # the next run keeps what was exchanged
    account.refresh_from_db()
    assert (account.points_redeemed, account.points) == (200, 50)
    # a return takes points back; available points never go below 0
    order(org, rich, dt.datetime(2026, 6, 20, 12), "-250", is_return=True)
    refresh(org)
    account.refresh_from_db()
    assert (account.points_earned, account.points) == (0, 0)


def test_points_exchange_needs_a_programme(in_org):
    buyer = person(in_org, "none")
    with pytest.raises(ApplicationError) as refused:
        services.points_redeem(organization=in_org, customer=buyer)
    assert refused.value.code == "no_programme"
    assert selectors.customer_loyalty(customer=buyer) is None


def test_a_paused_programme_is_not_recomputed(in_org):
    org = in_org
    buyer = person(org, "paused")
    order(org, buyer, dt.datetime(2026, 6, 1, 12), "150")
    save(org, active=False)
    assert "paused" in refresh(org)["message"]
    assert not LoyaltyAccount.objects.exists()


def test_switching_a_paused_programme_back_on_is_quiet(in_org):
    org = in_org
    buyer = person(org, "sleeper")
    order(org, buyer, dt.datetime(2026, 6, 1, 12), "50")
    save(org)
    refresh(org)
    save(org, active=False)
    order(org, buyer, dt.datetime(2026, 6, 2, 12), "600")
    refresh(org)  # paused: nothing moves
    assert tier_of(buyer) == "Bronze"
    save(org, active=True)
    result = refresh(org)
    assert tier_of(buyer) == "Gold" and result["quiet"] and result["events"] == 0


def test_the_steps_own_events_do_not_move_its_cut_off(in_org):
    org = in_org
    buyer = person(org, "steady")
    order(org, buyer, dt.datetime(2026, 6, 1, 12), "50")
    save(org)
    services.loyalty_refresh(organization=org)
    order(org, buyer, dt.datetime(2026, 6, 2, 12), "600")
    first = services.loyalty_refresh(organization=org)
    assert first["as_of"] == "2026-06-02" and first["events"] == 1  # an event dated now
    again = services.loyalty_refresh(organization=org)
    assert again["as_of"] == "2026-06-02" and again["accounts"] == 0
