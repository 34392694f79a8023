"""Automations: each trigger fires once per occurrence, with a campaign's rules
(consent, the frequency cap across automations and campaigns, quiet hours), results
like a campaign's, the API, and conversions attributed after an orders import."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from accounts.tenancy import tenant_context
from campaigns import automations as auto
from campaigns import selectors, sending, tracking
from campaigns.models import (
    Automation,
    AutomationMember,
    AutomationOccurrence,
    Campaign,
    CampaignSettings,
    Delivery,
    DeliveryStatus,
)
from campaigns.tests import sendworld as w
from core.exceptions import ApplicationError
from customers.models import Customer, Event, Order, OrderLine, Product
from segmentation.models import SegmentMembership

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def make(org, kind, params=None, *, channel="email", **extra) -> Automation:
    data = {
        "name": f"Auto {kind}",
        "trigger": {"kind": kind, "params": params or {}},
        "message": {
            "channel": channel,
            "subject": "Hi {{ first_name }}",
            "body": "Hello {{ first_name }}",
        },
        **extra,
    }
    automation = auto.automation_create(organization=org, data=data)
    Automation.objects.filter(pk=automation.pk).update(watch_from=NOW - dt.timedelta(days=1))
    automation.refresh_from_db()
    return automation


def evaluate(org, now=NOW):
    return auto.automations_evaluate(organization=org, now=now)


def sent_to(automation) -> list[int]:
    return sorted(
        Delivery.objects.filter(
            campaign__automation=automation, status=DeliveryStatus.SENT
        ).values_list("customer_id", flat=True)
    )


def test_enters_segment_fires_once_per_entry_and_not_for_members_at_the_start(in_org):
    org = in_org
    people = w.customers(org, 4, "seg")
    seg = w.segments(org, {"Loyal": people[:2]})["Loyal"]
    automation = make(org, "enters_segment", {"segment_id": seg.pk})
    evaluate(org)  # the first look records who is in already
    assert sent_to(automation) == [] and AutomationMember.objects.count() == 2
    SegmentMembership.objects.create(
        organization=org, run=seg.last_run, segment=seg, customer=people[2]
    )
    evaluate(org)
    evaluate(org)  # again: nothing more
    assert sent_to(automation) == [people[2].pk]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [people[2].email]
    # leaving and entering again is a new occurrence: round 2 of the automation
    SegmentMembership.objects.filter(customer=people[2]).delete()
    evaluate(org)
    SegmentMembership.objects.create(
        organization=org, run=seg.last_run, segment=seg, customer=people[2]
    )
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [people[2].pk, people[2].pk]
    assert Campaign.objects.filter(automation=automation).count() == 2
    keys = set(AutomationOccurrence.objects.values_list("key", flat=True))
    assert keys == {"entered:1", "entered:2"}
    stats = auto.automation_stats(automation)
    assert stats["sent"] == 2 and stats["occurrences"] == 2
    assert stats["by_segment"][0]["segment_id"] == seg.pk


def test_enters_audience_and_consent_is_respected(in_org):
    from audiences.models import Audience, AudienceMember

    org = in_org
    yes = w.customers(org, 1, "aud")[0]
    no = w.customers(org, 1, "audno", email=False)[0]
    audience = Audience.objects.create(
        organization=org, name="A", definition={"kind": "location", "countries": ["GB"]}
    )
    automation = make(org, "enters_audience", {"audience_id": audience.pk})
    evaluate(org)
    for rank, c in enumerate((yes, no)):
        AudienceMember.objects.create(organization=org, audience=audience, customer=c, rank=rank)
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [yes.pk]
    stats = auto.automation_stats(automation)
    assert stats["skipped_no_consent"] == 1 and stats["sent"] == 1 and stats["occurrences"] == 2
    assert [m.to for m in mail.outbox] == [[yes.email]]


def _predictions(org, rows):
    from predictions.models import CustomerPrediction, PredictionRun

    PredictionRun.objects.filter(is_live=True).update(is_live=False)
    run = PredictionRun.objects.create(
        organization=org, as_of=dt.date(2026, 6, 1), method="heuristic", is_live=True
    )
    PredictionRun.objects.filter(pk=run.pk).update(created_at=NOW - dt.timedelta(days=10))
    for customer, risk, expected in rows:
        CustomerPrediction.objects.create(
            organization=org, run=run, customer=customer, expected_orders_30d=0.1,
            expected_orders_90d=0.3, expected_orders_365d=1, expected_next_order_at=expected,
            predicted_clv_365d=10, expected_order_value=10, churn_probability=0.5,
            churn_risk=risk,
        )  # fmt: skip
    return run


def test_churn_high_fires_when_risk_becomes_high(in_org):
    org = in_org
    a, b = w.customers(org, 2, "churn")
    _predictions(org, [(a, "high", None), (b, "low", None)])
    automation = make(org, "churn_high")
    evaluate(org)
    assert sent_to(automation) == []
    _predictions(org, [(a, "high", None), (b, "high", None)])
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [b.pk]


def test_days_after_first_order_fires_once(in_org):
    org = in_org
    fresh, old, recent = w.customers(org, 3, "first")
    Customer.objects.filter(pk=fresh.pk).update(first_order_at=NOW - dt.timedelta(days=7, hours=1))
    Customer.objects.filter(pk=old.pk).update(first_order_at=NOW - dt.timedelta(days=400))
    Customer.objects.filter(pk=recent.pk).update(first_order_at=NOW - dt.timedelta(days=2))
    automation = make(org, "days_after_first_order", {"days": 7})
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [fresh.pk]
    evaluate(org, NOW + dt.timedelta(days=5, hours=1))
    assert sent_to(automation) == [fresh.pk, recent.pk]


def test_next_order_overdue_fires_once_per_expected_date(in_org):
    org = in_org
    late, on_time = w.customers(org, 2, "due")
    _predictions(
        org,
        [(late, "medium", dt.date(2026, 6, 10)), (on_time, "medium", dt.date(2026, 6, 14))],
    )
    automation = make(org, "next_order_overdue", {"days": 3})
    Automation.objects.filter(pk=automation.pk).update(watch_from=NOW - dt.timedelta(days=3))
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [late.pk]
    assert AutomationOccurrence.objects.get().key == "overdue:2026-06-10"


def test_birthday_in_the_customers_time_zone(in_org):
    org = in_org
    org.time_zone = "Europe/London"
    org.save()
    # 12:00 UTC on 15 June is already 16 June in Auckland, still 15 June in London
    kiwi, londoner, tomorrow = w.customers(org, 3, "bday")
    Customer.objects.filter(pk=kiwi.pk).update(
        birth_date=dt.date(1990, 6, 16), attributes={"time_zone": "Pacific/Auckland"}
    )
    Customer.objects.filter(pk=londoner.pk).update(birth_date=dt.date(1985, 6, 15))
    Customer.objects.filter(pk=tomorrow.pk).update(birth_date=dt.date(1985, 6, 16))
    automation = make(org, "birthday")
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == sorted([kiwi.pk, londoner.pk])
    assert set(AutomationOccurrence.objects.values_list("key", flat=True)) == {"birthday:2026"}
    evaluate(org, NOW + dt.timedelta(days=1))
    assert len(sent_to(automation)) == 3
    # next year: a second occurrence, in round 2
    evaluate(org, NOW + dt.timedelta(days=365))
    assert sent_to(automation).count(londoner.pk) == 2


def test_back_in_stock_goes_to_buyers_and_viewers_only(in_org):
    org = in_org
    buyer, viewer, other = w.customers(org, 3, "stock")
    Product.objects.create(organization=org, sku="MUG", name="Mug", in_stock=False)
    Product.objects.create(organization=org, sku="CUP", name="Cup", in_stock=True)
    order = Order.objects.create(organization=org, external_id="o1", customer=buyer, ordered_at=NOW)
    OrderLine.objects.create(organization=org, order=order, sku="MUG", amount=5)
    other_order = Order.objects.create(
        organization=org, external_id="o2", customer=other, ordered_at=NOW
    )
    OrderLine.objects.create(organization=org, order=other_order, sku="CUP", amount=5)
    Event.objects.create(
        organization=org, customer=viewer, type="product_viewed", occurred_at=NOW,
        properties={"sku": "MUG"},
    )  # fmt: skip
    automation = make(org, "back_in_stock")
    evaluate(org)
    assert sent_to(automation) == []
    Product.objects.filter(sku="MUG").update(in_stock=True, updated_at=NOW)
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == sorted([buyer.pk, viewer.pk])


def test_tier_changed_fires_per_event(in_org):
    org = in_org
    person, dropped = w.customers(org, 2, "tier")
    automation = make(org, "tier_changed", {"tier": "Gold"})
    Event.objects.create(
        organization=org, customer=person, type="tier_changed", occurred_at=NOW - dt.timedelta(hours=1),
        properties={"tier": "Gold", "from": "Silver", "up": True},
    )  # fmt: skip
    Event.objects.create(
        organization=org, customer=person, type="tier_changed", occurred_at=NOW - dt.timedelta(hours=2),
        properties={"tier": "Silver", "from": "", "up": True},
    )  # fmt: skip
    # a drop from Platinum into Gold is not "reached Gold"
    Event.objects.create(
        organization=org, customer=dropped, type="tier_changed", occurred_at=NOW - dt.timedelta(hours=1),
        properties={"tier": "Gold", "from": "Platinum", "up": False},
    )  # fmt: skip
    evaluate(org)
    evaluate(org)
    assert sent_to(automation) == [person.pk]


def test_the_frequency_cap_counts_automations_and_campaigns_together(in_org):
    org = in_org
    capped, free = w.customers(org, 2, "cap")
    CampaignSettings.objects.create(organization=org, cap_messages=1, cap_days=7)
    segs = w.segments(org, {"Only": [capped], "Free": [free]})
    campaign = w.campaign(org, [segs["Only"].pk], status="sending")
    sending.campaign_send_run(campaign_id=campaign.pk)
    assert Delivery.objects.get(campaign=campaign).status == DeliveryStatus.SENT
    for c in (capped, free):
        Customer.objects.filter(pk=c.pk).update(birth_date=dt.date(1990, 6, 15))
    automation = make(org, "birthday")
    evaluate(org, timezone.now().replace(month=6, day=15, hour=12))
    stats = auto.automation_stats(automation)
    assert sent_to(automation) == [free.pk]
    assert stats["skipped_frequency_cap"] == 1
    # and the automation's message counts against a campaign sent next
    later = w.campaign(org, [segs["Free"].pk], status="sending", name="Later")
    sending.campaign_send_run(campaign_id=later.pk)
    assert Delivery.objects.get(campaign=later).skip_reason == "frequency_cap"


def test_suppressed_and_switched_off(in_org):
    org = in_org
    bounced, fine = w.customers(org, 2, "sup")
    for c in (bounced, fine):
        Customer.objects.filter(pk=c.pk).update(birth_date=dt.date(1990, 6, 15))
    old = w.campaign(org, [], name="Old", status="sent")
    Delivery.objects.create(
        organization=org, campaign=old, customer=bounced, channel="email",
        status=DeliveryStatus.BOUNCED, token="b" * 32, sent_at=NOW - dt.timedelta(days=30),
    )  # fmt: skip
    automation = make(org, "birthday")
    paused = make(org, "birthday", active=False)
    evaluate(org)
    assert sent_to(automation) == [fine.pk]
    assert auto.automation_stats(automation)["skipped_suppressed"] == 1
    assert not Delivery.objects.filter(campaign__automation=paused).exists()


def test_sms_waits_for_the_end_of_quiet_hours(in_org):
    org = in_org
    person = w.customers(org, 1, "quiet", sms=True)[0]
    # 22:30 tomorrow in UTC (the organisation's zone): quiet hours until 09:00
    late = (timezone.now() + dt.timedelta(days=1)).replace(hour=22, minute=30, second=0)
    Customer.objects.filter(pk=person.pk).update(birth_date=late.date().replace(year=1992))
    automation = make(org, "birthday", channel="sms")
    evaluate(org, late)
    row = Delivery.objects.get(campaign__automation=automation)
    assert row.status == DeliveryStatus.QUEUED
    nine = (late + dt.timedelta(days=1)).replace(hour=9, minute=0, microsecond=0)
    assert row.scheduled_for == nine
    # its channel cannot change while the message waits
    with pytest.raises(ApplicationError) as refused:
        auto.automation_update(
            organization=org,
            automation=automation,
            data={"message": {"channel": "email", "subject": "Hi", "body": "Hello"}},
        )
    assert refused.value.status == 409


def test_two_evaluators_at_once_send_once(in_org):
    org = in_org
    person = w.customers(org, 1, "twice")[0]
    Customer.objects.filter(pk=person.pk).update(birth_date=dt.date(1990, 6, 15))
    automation = make(org, "birthday")
    # another scheduler holds the automation: this one does nothing
    Automation.objects.filter(pk=automation.pk).update(
        claimed_until=timezone.now() + dt.timedelta(minutes=5)
    )
    assert evaluate(org)["occurrences"] == 0
    Automation.objects.filter(pk=automation.pk).update(claimed_until=None)
    evaluate(org)
    # occurrences written twice (a crash between runs) are one row
    AutomationOccurrence.objects.bulk_create(
        [
            AutomationOccurrence(
                organization=org, automation=automation, customer=person, key="birthday:2026"
            )
        ],
        ignore_conflicts=True,
    )
    evaluate(org)
    assert sent_to(automation) == [person.pk] and len(mail.outbox) == 1


def test_the_periodic_task_runs_a_job_per_organisation(
    org, other_org, django_capture_on_commit_callbacks
):
    from campaigns.tasks import automations_due
    from core.models import Job

    with tenant_context(org):
        person = w.customers(org, 1, "job")[0]
        Customer.objects.filter(pk=person.pk).update(birth_date=timezone.now().date())
        automation = make(org, "birthday")
    with django_capture_on_commit_callbacks(execute=True):
        assert automations_due() == 1  # other_org has no automation
    with tenant_context(org):
        job = Job.objects.get(kind="automations_run")
        assert job.status == "succeeded", job.message
        assert sent_to(automation) == [person.pk]


def test_an_imported_order_after_a_click_converts(
    in_org, tmp_path, django_capture_on_commit_callbacks
):
    from customers.services.importing import import_from_path

    org = in_org
    person = w.customers(org, 1, "conv")[0]
    Customer.objects.filter(pk=person.pk).update(birth_date=timezone.now().date())
    automation = make(org, "birthday")
    evaluate(org, timezone.now())
    row = Delivery.objects.get(campaign__automation=automation)
    link = sending.Messages(row.campaign).tracked("https://shop.example/new")
    tracking.record_click(row, link, at=timezone.now() - dt.timedelta(hours=1))
    path = tmp_path / "orders.csv"
    ordered = (timezone.now() - dt.timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
    path.write_text(
        "order_id,customer_id,ordered_at,sku,product_name,quantity,unit_price\n"
        f"A1,{person.external_id},{ordered},MUG,Mug,2,10.00\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_from_path(organization=org, path=str(path), kind="orders", run_pipeline=False)
    stats = auto.automation_stats(automation)
    assert stats["converted"] == 1 and stats["revenue"] == 20.0


def test_the_periodic_conversions_task_attributes_recent_orders(in_org):
    from campaigns.tasks import conversions_due

    org = in_org
    person = w.customers(org, 1, "conv2")[0]
    Customer.objects.filter(pk=person.pk).update(birth_date=timezone.now().date())
    automation = make(org, "birthday")
    evaluate(org, timezone.now())
    row = Delivery.objects.get(campaign__automation=automation)
    tracking.record_open(row, at=timezone.now() - dt.timedelta(hours=1))
    Order.objects.create(
        organization=org, external_id="B1", customer=person, total=Decimal("12.00"),
        ordered_at=timezone.now() - dt.timedelta(minutes=5), status="paid",
    )  # fmt: skip
    conversions_due()
    assert auto.automation_stats(automation)["converted"] == 1


def test_erasure_and_exports_cover_occurrences(in_org):
    org = in_org
    person = w.customers(org, 1, "gdpr")[0]
    Customer.objects.filter(pk=person.pk).update(birth_date=dt.date(1990, 6, 15))
    make(org, "birthday")
    evaluate(org)
    export = selectors.person_export(customer=person)
    assert export["automation_occurrences"][0]["key"] == "birthday:2026"
    files = {name: list(rows) for name, _, rows in selectors.org_export()}
    assert files["automation_occurrences.csv"][0][0] == person.external_id
    selectors.erase_customers(organization=org, customer_ids=[person.pk])
    assert not AutomationOccurrence.objects.exists() and not AutomationMember.objects.exists()


# --- the API ---------------------------------------------------------------------------------
def test_api_shapes_and_errors(api, org):
    body = {
        "name": "Welcome back",
        "trigger": {"kind": "days_after_first_order", "params": {"days": 30}},
        "message": {"channel": "email", "subject": "Hi {{ first_name }}", "body": "Come back"},
        "active": True,
    }
    made = api.post("/api/v1/automations/", body, format="json")
    assert made.status_code == 201, made.content
    data = made.json()
    assert data["trigger"] == {"kind": "days_after_first_order", "params": {"days": 30}}
    assert data["message"]["channel"] == "email" and data["active"] is True
    pk = data["id"]
    assert api.get("/api/v1/automations/").json()["results"][0]["id"] == pk
    changed = api.patch(f"/api/v1/automations/{pk}/", {"active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["active"] is False
    stats = api.get(f"/api/v1/automations/{pk}/stats/").json()
    assert stats["sent"] == 0 and stats["occurrences"] == 0 and "variants" in stats
    bad = api.post(
        "/api/v1/automations/", {**body, "trigger": {"kind": "full_moon"}}, format="json"
    )
    assert bad.status_code == 400 and "trigger.kind" in bad.json()["error"]["fields"]
    bad = api.post(
        "/api/v1/automations/",
        {**body, "trigger": {"kind": "enters_segment", "params": {"segment_id": 999999}}},
        format="json",
    )
    assert bad.status_code == 400 and "trigger.params.segment_id" in bad.json()["error"]["fields"]
    bad = api.post(
        "/api/v1/automations/", {**body, "message": {"channel": "email", "body": ""}}, format="json"
    )
    assert bad.status_code == 400 and "message.body" in bad.json()["error"]["fields"]
    assert api.delete(f"/api/v1/automations/{pk}/").status_code == 204
    assert api.get(f"/api/v1/automations/{pk}/").status_code == 404


def test_another_organisations_automation_is_404_and_hidden_campaigns_are_not_listed(
    api, org, other_org
):
    with tenant_context(other_org):
        theirs = make(other_org, "birthday")
    assert api.get(f"/api/v1/automations/{theirs.pk}/").status_code == 404
    assert api.get(f"/api/v1/automations/{theirs.pk}/stats/").status_code == 404
    assert (
        api.patch(f"/api/v1/automations/{theirs.pk}/", {"active": False}, format="json").status_code
        == 404
    )
    with tenant_context(org):
        person = w.customers(org, 1, "hid")[0]
        Customer.objects.filter(pk=person.pk).update(birth_date=dt.date(1990, 6, 15))
        make(org, "birthday")
        evaluate(org)
        assert Campaign.objects.filter(automation__isnull=False).count() == 1
    assert api.get("/api/v1/campaigns/").json()["results"] == []
