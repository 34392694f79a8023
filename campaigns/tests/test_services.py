"""Who a campaign reaches: consent, the frequency cap, the hold-out, variants, timing."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.core import mail
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, CampaignSettings, Delivery, DeliveryStatus
from campaigns.tests import sendworld as w
from core.exceptions import ApplicationError

UTC = dt.UTC


def _send(org, campaign):
    job = services.campaign_send(organization=org, campaign=campaign, sync=True)
    campaign.refresh_from_db()
    return job


def test_nobody_without_consent_is_ever_sent_to(in_org):
    org = in_org
    yes = w.customers(org, 4, "yes")
    no = w.customers(org, 3, "no", email=False)
    blank = w.customers(org, 2, "blank")
    for c in blank:
        c.email = ""
        c.save()
    seg = w.segments(org, {"All": yes + no + blank})["All"]
    campaign = w.campaign(org, [seg.pk])
    audit = services.campaign_audit(campaign)
    assert audit["audience"] == 9
    assert audit["sendable"] == 4
    assert audit["skipped_no_consent"] == 3
    assert audit["skipped_no_address"] == 2
    assert audit["plan"]["per_variant"] > 0

    job = _send(org, campaign)
    assert job.status == "succeeded", job.message
    assert campaign.status == "sent"
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in yes)
    skipped = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SKIPPED)
    assert {d.customer_id for d in skipped} == {c.pk for c in no + blank}
    assert set(skipped.values_list("to_address", flat=True)) == {""}


def test_sms_needs_sms_consent_and_a_phone(in_org, monkeypatch):
    org = in_org
    sent = []
    monkeypatch.setattr(
        "campaigns.sms.send_sms", lambda **kw: sent.append(kw["to"]) or f"m{len(sent)}"
    )
    texters = w.customers(org, 2, "tx", email=True, sms=True)
    emailers = w.customers(org, 2, "em", email=True, sms=False)
    no_phone = w.customers(org, 1, "np", sms=True, phone=False)
    seg = w.segments(org, {"All": texters + emailers + no_phone})["All"]
    CampaignSettings.objects.create(organization=org, quiet_start_hour=0, quiet_end_hour=0)
    campaign = w.campaign(org, [seg.pk], channel="sms", subject="", body="Hi {{ first_name }}")
    _send(org, campaign)
    assert sorted(sent) == sorted(c.phone for c in texters)
    assert campaign.counts["skipped_no_consent"] == 2
    assert campaign.counts["skipped_no_address"] == 1


def test_the_frequency_cap_holds_across_two_campaigns(in_org):
    org = in_org
    people = w.customers(org, 5, "cap")
    seg = w.segments(org, {"All": people})["All"]
    CampaignSettings.objects.create(organization=org, cap_messages=1, cap_days=7)
    first = w.campaign(org, [seg.pk], name="First")
    second = w.campaign(org, [seg.pk], name="Second")
    _send(org, first)
    assert len(mail.outbox) == 5
    assert services.campaign_audit(second)["skipped_frequency_cap"] == 5
    _send(org, second)
    assert len(mail.outbox) == 5  # nobody got a second message
    assert second.counts["skipped_frequency_cap"] == 5
    # older than the window: counted no more
    Delivery.objects.filter(campaign=first).update(sent_at=timezone.now() - dt.timedelta(days=8))
    third = w.campaign(org, [seg.pk], name="Third")
    assert services.campaign_audit(third)["sendable"] == 5


def test_no_cap_until_the_owner_sets_one(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 3, "nc")})["All"]
    for name in ("A", "B", "C"):
        _send(org, w.campaign(org, [seg.pk], name=name))
    assert len(mail.outbox) == 9


def test_the_hold_out_gets_nothing_and_is_reproducible(in_org):
    org = in_org
    people = w.customers(org, 200, "h")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk], holdout_share=0.25)
    first = services.campaign_recipients_plan(campaign)
    second = services.campaign_recipients_plan(campaign)
    held = {d.customer_id for d in first.decisions if d.status == DeliveryStatus.HOLDOUT}
    assert held == {d.customer_id for d in second.decisions if d.status == "holdout"}
    assert 30 <= len(held) <= 70  # about a quarter of 200
    _send(org, campaign)
    rows = Delivery.objects.filter(campaign=campaign)
    assert set(rows.filter(status="holdout").values_list("customer_id", flat=True)) == held
    emails = {c.pk: c.email for c in people}
    got = {m.to[0] for m in mail.outbox}
    assert not got & {emails[cid] for cid in held}
    assert len(got) == 200 - len(held)


def test_a_customer_matching_two_variants_gets_the_first_created(in_org):
    org = in_org
    both = w.customers(org, 2, "both")
    only_b = w.customers(org, 2, "onlyb")
    segs = w.segments(org, {"A": both, "B": both + only_b})
    campaign = w.campaign(org, [segs["A"].pk, segs["B"].pk])
    persona_b = w.persona(org, segs["B"])
    first = w.variant(org, campaign, "ForB", persona=persona_b)
    second = w.variant(org, campaign, "ForA", segment_ids=[segs["A"].pk])
    plan = services.campaign_recipients_plan(campaign)
    by_customer = {d.customer_id: d.variant_id for d in plan.decisions}
    assert {by_customer[c.pk] for c in both} == {first.pk}
    assert {by_customer[c.pk] for c in only_b} == {first.pk}
    assert second.pk not in by_customer.values()
    _send(org, campaign)
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects[both[0].email].startswith("ForB")


def test_fixed_a_b_shares(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 400, "ab")})["All"]
    campaign = w.campaign(org, [seg.pk])
    a = w.variant(org, campaign, "A", share=0.8)
    b = w.variant(org, campaign, "B", share=0.2)
    plan = services.campaign_recipients_plan(campaign)
    counts = {a.pk: 0, b.pk: 0}
    for d in plan.decisions:
        counts[d.variant_id] += 1
    assert 280 <= counts[a.pk] <= 360
    assert counts[a.pk] + counts[b.pk] == 400


def test_sms_in_quiet_hours_waits_for_them_to_end():
    current = CampaignSettings(quiet_start_hour=21, quiet_end_hour=9)
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    # 22:30 in Paris (21:30 UTC in winter): until 09:00 Paris the next day
    until = services.quiet_until(dt.datetime(2026, 1, 10, 21, 30, tzinfo=UTC), paris, current)
    assert until == dt.datetime(2026, 1, 11, 8, 0, tzinfo=UTC)
    # 03:00 Paris: 09:00 the same day
    until = services.quiet_until(dt.datetime(2026, 1, 10, 2, 0, tzinfo=UTC), paris, current)
    assert until == dt.datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    assert services.quiet_until(dt.datetime(2026, 1, 10, 12, tzinfo=UTC), paris, current) is None


def test_quiet_hours_use_the_customer_time_zone_and_defer(in_org):
    org = in_org
    tokyo = w.customers(org, 1, "tk", sms=True, attributes={"time_zone": "Asia/Tokyo"})
    london = w.customers(org, 1, "ld", sms=True, attributes={"time_zone": "Europe/London"})
    seg = w.segments(org, {"All": tokyo + london})["All"]
    CampaignSettings.objects.create(organization=org, quiet_start_hour=21, quiet_end_hour=9)
    campaign = w.campaign(org, [seg.pk], channel="sms", subject="", body="Hi")
    now = dt.datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 22:00 in Tokyo, 13:00 in London
    plan = {
        d.customer_id: d for d in services.campaign_recipients_plan(campaign, now=now).decisions
    }
    assert plan[tokyo[0].pk].scheduled_for == dt.datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert plan[tokyo[0].pk].status == DeliveryStatus.QUEUED  # deferred, not dropped
    assert plan[london[0].pk].scheduled_for is None


def test_best_hour_is_the_most_common_order_hour_in_the_customer_zone(in_org):
    from customers.models import Order

    org = in_org
    person = w.customers(org, 1, "bh", attributes={"time_zone": "America/New_York"})[0]
    for i, hour_utc in enumerate((23, 23, 14)):  # 18:00 New York twice (winter), 09:00 once
        Order.objects.create(
            organization=org, customer=person, external_id=f"o{i}", total=10,
            ordered_at=dt.datetime(2026, 1, 5 + i, hour_utc, 0, tzinfo=UTC),
        )  # fmt: skip
    seg = w.segments(org, {"All": [person]})["All"]
    campaign = w.campaign(org, [seg.pk], best_hour=True)
    now = dt.datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    (decision,) = services.campaign_recipients_plan(campaign, now=now).decisions
    assert decision.scheduled_for == dt.datetime(2026, 2, 1, 23, 0, tzinfo=UTC)


def test_changes_only_while_draft_or_scheduled(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 1, "ed")})["All"]
    campaign = w.campaign(org, [seg.pk])
    services.campaign_update(organization=org, campaign=campaign, data={"name": "Renamed"})
    Campaign.objects.filter(pk=campaign.pk).update(status="sent")
    with pytest.raises(ApplicationError) as err:
        services.campaign_update(organization=org, campaign=campaign, data={"name": "x"})
    assert err.value.status == 409
    with pytest.raises(ApplicationError) as err:
        services.campaign_delete(organization=org, campaign=campaign)
    assert err.value.status == 409
    with pytest.raises(ApplicationError) as err:
        services.variant_create(
            organization=org, campaign=campaign, data={"name": "v", "body": "b"}
        )
    assert err.value.status == 409


def test_bad_input_names_the_field(in_org):
    org = in_org
    with pytest.raises(ApplicationError) as err:
        services.campaign_create(organization=org, data={"name": "x", "channel": "fax"})
    assert "channel" in err.value.extra["fields"]
    with pytest.raises(ApplicationError) as err:
        services.campaign_create(
            organization=org, data={"name": "x", "channel": "email", "segment_ids": [99999]}
        )
    assert "segment_ids" in err.value.extra["fields"]
    with pytest.raises(ApplicationError) as err:
        services.campaign_create(organization=org, data={"name": "x", "channel": "email"})
    assert "segment_ids" in err.value.extra["fields"]


def test_a_starter_draft_from_a_persona(in_org, monkeypatch):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 1, "dr")})["All"]
    persona = w.persona(org, seg)
    monkeypatch.setattr(
        "campaigns.drafts.draft_for_persona",
        lambda p, *, channel, goal: (f"For {p.name}", f"Dear {{{{ first_name }}}} ({goal})"),
    )
    campaign = w.campaign(org, [seg.pk], goal="win back")
    variant = services.variant_create(
        organization=org, campaign=campaign,
        data={"name": "Draft", "persona_id": persona.pk, "draft": True},
    )  # fmt: skip
    assert variant.is_draft
    assert variant.subject == "For Bargain hunter"
    assert "(win back)" in variant.body


def test_a_future_send_at_schedules_and_send_due_fires_once(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 3, "sd")})["All"]
    campaign = w.campaign(org, [seg.pk], send_at=timezone.now() + dt.timedelta(hours=2))
    assert services.campaign_send(organization=org, campaign=campaign) is None
    assert campaign.status == "scheduled"
    assert services.campaigns_start_due() == 0
    later = timezone.now() + dt.timedelta(hours=3)
    assert services.campaigns_start_due(now=later) == 1
    assert services.campaigns_start_due(now=later) == 0  # a second scheduler: nothing
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    assert campaign.job is not None


def test_a_bounce_suppresses_until_a_newer_opt_in(in_org):
    import secrets

    org = in_org
    person = w.customers(org, 1, "sup")[0]
    seg = w.segments(org, {"All": [person]})["All"]
    old = w.campaign(org, [seg.pk], name="Old", status="sent")
    bounced_at = timezone.now() - dt.timedelta(days=3)
    Delivery.objects.create(
        organization=org, campaign=old, customer=person, channel="email", status="bounced",
        token=secrets.token_hex(16), sent_at=bounced_at,
    )  # fmt: skip
    campaign = w.campaign(org, [seg.pk])
    assert services.campaign_audit(campaign)["skipped_suppressed"] == 1
    person.email_consent_at = bounced_at + dt.timedelta(days=1)  # opted in again since
    person.save()
    assert services.campaign_audit(campaign)["sendable"] == 1
    # an SMS campaign is not affected by an email bounce
    person.accepts_sms = True
    person.save()
    sms = w.campaign(org, [seg.pk], channel="sms", subject="", body="Hi")
    assert services.campaign_audit(sms)["skipped_suppressed"] == 0


def test_the_periodic_task_starts_due_sends_in_every_organisation(org, other_org):
    from accounts.tenancy import tenant_context
    from campaigns.tasks import send_due

    campaigns = []
    for organization in (org, other_org):
        with tenant_context(organization):
            seg = w.segments(organization, {"All": w.customers(organization, 1, "pd")})["All"]
            campaign = w.campaign(organization, [seg.pk])
            campaign.send_at = timezone.now() + dt.timedelta(minutes=5)
            campaign.save()
            services.campaign_send(organization=organization, campaign=campaign)
            Campaign.objects.filter(pk=campaign.pk).update(
                send_at=timezone.now() - dt.timedelta(minutes=1)
            )
            campaigns.append(campaign)
    assert send_due() == 2
    assert send_due() == 0  # fired once
    for organization, campaign in zip((org, other_org), campaigns, strict=True):
        with tenant_context(organization):
            campaign.refresh_from_db()
            assert campaign.status == "sending" and campaign.job_id
