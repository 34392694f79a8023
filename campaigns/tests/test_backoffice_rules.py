"""The back office's rules for sending (issue 17, campaigns/rules.py): a suspended
organisation's campaigns and automations wait (scheduled ones stay scheduled, a
running send pauses between batches and resumes without sending anyone twice), and
`emails_per_day` stops campaign and automation emails for the UTC day, the rest
waiting until the next one."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from accounts.models import AuditLogEntry, Organization, OrganizationLimits
from accounts.tenancy import tenant_context
from campaigns import automations as auto
from campaigns import rules, sending, services
from campaigns.models import Automation, Campaign, Delivery, DeliveryStatus
from campaigns.tasks import automations_due, send_due
from campaigns.tests import sendworld as w
from core.jobs import JobPaused
from core.models import Job
from customers.models import Customer

pytestmark = pytest.mark.django_db

LIMIT_2 = (
    "Your plan's limit of 3 emails a day is reached: 2 messages wait until tomorrow. "
    "Ask Segmenta support to raise it."
)


def _status(org, status: str) -> None:
    """Suspend or reactivate the way the back office leaves the row (status only)."""
    Organization.objects.filter(pk=org.pk).update(status=status)
    org.status = status


def _limit(org, emails_per_day: int) -> None:
    OrganizationLimits.objects.update_or_create(
        organization=org, defaults={"emails_per_day": emails_per_day}
    )


def _tomorrow(monkeypatch, minutes: int = 1) -> dt.datetime:
    """The clock moves to just after the next UTC midnight."""
    then = rules.next_day_start() + dt.timedelta(minutes=minutes)
    monkeypatch.setattr(timezone, "now", lambda: then)
    return then


def _once_each() -> Counter:
    times = Counter(m.to[0] for m in mail.outbox)
    assert not times or max(times.values()) == 1, times  # nobody got it twice
    return times


# --- suspension ---------------------------------------------------------------------------
def test_a_suspended_organisations_scheduled_send_waits_and_goes_after_reactivation(
    org, owner_client
):
    with tenant_context(org):
        seg = w.segments(org, {"All": w.customers(org, 3, "sus")})["All"]
        campaign = w.campaign(
            org, [seg.pk], status="scheduled", send_at=timezone.now() - dt.timedelta(minutes=1)
        )
    _status(org, "suspended")
    assert send_due() == 0
    with tenant_context(org):
        campaign.refresh_from_db()
        # nothing claimed, written or sent: it stays scheduled
        assert (campaign.status, campaign.job_id) == ("scheduled", None)
        assert not Delivery.objects.exists() and not Job.objects.exists()
    assert mail.outbox == []
    with tenant_context(org):
        notice = rules.campaign_notice(campaign, org)
    assert notice == {"code": "organization_suspended", "message": rules.PAUSED_NOTICE}

    _status(org, "active")
    page = owner_client.get(f"/campaigns/{campaign.pk}/")
    assert "Paused: the organisation is suspended" not in page.content.decode()
    assert send_due() == 1
    with tenant_context(org):
        campaign.refresh_from_db()
        services._run_now(campaign.job)
        assert send_due() == 0  # claimed once
        campaign.refresh_from_db()
        assert campaign.status == "sent"
    assert len(_once_each()) == 3


def test_the_campaign_page_says_a_scheduled_send_is_paused(org, owner, rf):
    from django.template.loader import render_to_string

    from campaigns.views import _detail_context

    with tenant_context(org):
        seg = w.segments(org, {"All": w.customers(org, 1, "pg")})["All"]
        campaign = w.campaign(
            org, [seg.pk], status="scheduled", send_at=timezone.now() + dt.timedelta(hours=1)
        )
    _status(org, "suspended")
    # the page as drawn for the organisation (its members are sent to the suspended page)
    request = rf.get(f"/campaigns/{campaign.pk}/")
    request.organization, request.user = org, owner
    with tenant_context(org):
        context = _detail_context(request, campaign)
    assert context["notice"]["message"] == "Paused: the organisation is suspended"
    assert "Paused: the organisation is suspended" in render_to_string(
        "campaigns/_send.html", context
    )


def test_a_send_running_when_the_organisation_is_suspended_pauses_and_resumes_once(
    in_org, monkeypatch
):
    org = in_org
    people = w.customers(org, 7, "mid")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    real = LocmemBackend.send_messages

    def suspending(self, messages):
        result = real(self, messages)
        if len(mail.outbox) == 3:  # the back office suspends it during the first batch
            Organization.objects.filter(pk=org.pk).update(status="suspended")
        return result

    monkeypatch.setattr(LocmemBackend, "send_messages", suspending)
    with pytest.raises(JobPaused) as stopped:
        sending.campaign_send_run(campaign_id=campaign.pk, batch_size=3)
    assert stopped.value.message.startswith("Paused while Acme Gifts is suspended")
    rows = Delivery.objects.filter(campaign=campaign)
    # the first batch went; the rest stays queued (none in hand, none failed)
    assert rows.filter(status=DeliveryStatus.SENT).count() == 3
    assert rows.filter(status=DeliveryStatus.QUEUED).count() == 4
    assert not rows.exclude(status__in=(DeliveryStatus.SENT, DeliveryStatus.QUEUED)).exists()
    campaign.refresh_from_db()
    assert campaign.status == "sending"  # not failed: it carries on after reactivation
    with pytest.raises(JobPaused):  # while suspended, a restart sends nothing
        sending.campaign_send_run(campaign_id=campaign.pk, batch_size=3)
    assert len(mail.outbox) == 3

    Organization.objects.filter(pk=org.pk).update(status="active")
    done = sending.campaign_send_run(campaign_id=campaign.pk, batch_size=3)
    assert done["sent"] == 4 and done["interrupted"] == 0
    assert sorted(_once_each()) == sorted(p.email for p in people)
    campaign.refresh_from_db()
    assert campaign.status == "sent"


def test_the_send_job_goes_back_to_the_queue_while_suspended(
    in_org, monkeypatch, django_capture_on_commit_callbacks
):
    """Through the job: TenantTask puts a paused job back to "queued" with the message
    (core.jobs); the campaign keeps its job and is not failed; the reactivation
    (accounts.suspension) sends the job again and the rest goes, once."""
    from accounts.suspension import organization_reactivate

    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 4, "job")})["All"]
    campaign = w.campaign(org, [seg.pk])
    job = services.campaign_send(organization=org, campaign=campaign)  # queued
    monkeypatch.setitem(sending._send_run.__kwdefaults__, "batch_size", 2)
    real = LocmemBackend.send_messages

    def suspending(self, messages):
        result = real(self, messages)
        Organization.objects.filter(pk=org.pk).update(status="suspended")
        return result

    monkeypatch.setattr(LocmemBackend, "send_messages", suspending)
    services._run_now(job)
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert job.status == "queued", job.message
    assert job.message.startswith("Paused while Acme Gifts is suspended")
    assert (campaign.status, campaign.job_id) == ("sending", job.pk)
    # suspended during the first batch of two: that batch went, the next did not
    assert len(mail.outbox) == 2
    assert Delivery.objects.filter(status=DeliveryStatus.QUEUED).count() == 2

    monkeypatch.setattr(LocmemBackend, "send_messages", real)
    with django_capture_on_commit_callbacks(execute=True):
        organization_reactivate(organization=org, actor=None)
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert job.status == "succeeded", job.message
    assert campaign.status == "sent"
    assert len(_once_each()) == 4


def test_automations_wait_while_suspended(org, monkeypatch):
    with tenant_context(org):
        person = w.customers(org, 1, "asus")[0]
        Customer.objects.filter(pk=person.pk).update(birth_date=_today_there(org))
        make_automation(org)
    _status(org, "suspended")
    assert automations_due() == 0  # no job for a suspended organisation
    with tenant_context(org):
        assert not Job.objects.exists()
        with pytest.raises(JobPaused):  # a job already queued pauses before sending
            auto.automations_evaluate(organization=org)
        assert not Delivery.objects.filter(status=DeliveryStatus.SENT).exists()
    _status(org, "active")
    with tenant_context(org):
        result = auto.automations_evaluate(organization=org)
    assert result["sent"] == 1 and len(mail.outbox) == 1


def test_conversions_go_on_for_a_suspended_organisation(org):
    """Attribution sends nothing, so it goes on (the figures are right on return)."""
    from campaigns.tasks import conversions_due

    _status(org, "suspended")
    assert conversions_due() == 0  # runs (nothing sent lately), raises nothing


# --- emails a day -------------------------------------------------------------------------
def test_emails_per_day_stops_the_send_and_the_rest_goes_tomorrow(
    org, owner_client, api, monkeypatch
):
    _limit(org, 3)
    with tenant_context(org):
        people = w.customers(org, 5, "day") + w.customers(org, 2, "nope", email=False)
        seg = w.segments(org, {"All": people})["All"]
        campaign = w.campaign(org, [seg.pk])
        job = services.campaign_send(organization=org, campaign=campaign, sync=True)
        job.refresh_from_db()
        campaign.refresh_from_db()
    assert len(mail.outbox) == 3
    assert job.status == "succeeded"
    assert job.message == f"Sent 3 messages. {LIMIT_2}"
    assert job.result["limit_reached"]["waiting"] == 2
    midnight = rules.next_day_start()
    with tenant_context(org):
        waiting = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED)
        assert waiting.count() == 2
        assert set(waiting.values_list("scheduled_for", flat=True)) == {midnight}
        # the two without consent were skipped, not counted
        assert Delivery.objects.filter(campaign=campaign, status="skipped").count() == 2
    assert campaign.status == "sending"
    assert campaign.message == LIMIT_2

    # the API and the page say so
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert body["notice"]["code"] == "limit_reached"
    assert body["notice"]["message"] == LIMIT_2
    assert (body["notice"]["limit"], body["notice"]["value"]) == ("emails_per_day", 3)
    assert body["notice"]["waiting"] == 2
    assert body["notice"]["until"] == midnight.isoformat()
    page = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "2 messages wait until tomorrow" in page

    # one audit entry for the day, by the system
    with tenant_context(org):
        entries = AuditLogEntry.objects.filter(action="limit_reached")
        assert entries.count() == 1
        entry = entries.get()
        assert entry.actor_kind == "system" and entry.actor_id is None
        assert entry.details["limit"] == "emails_per_day" and entry.details["value"] == 3
        assert entry.details["message"] == LIMIT_2

    # nothing more goes today: send_due finds nothing due
    assert send_due() == 0
    assert len(mail.outbox) == 3

    # the next UTC day, send_due carries on and the two go, once
    _tomorrow(monkeypatch)
    assert send_due() == 1
    with tenant_context(org):
        campaign.refresh_from_db()
        services._run_now(campaign.job)
        campaign.refresh_from_db()
        assert campaign.job.status == "succeeded" and campaign.job.message == "Sent 2 messages."
    assert campaign.status == "sent" and campaign.message == ""
    assert sorted(_once_each()) == sorted(p.email for p in people[:5])
    assert api.get(f"/api/v1/campaigns/{campaign.pk}/").json()["notice"] is None


def test_a_second_send_the_same_day_waits_and_one_audit_entry_a_day(org, api):
    _limit(org, 3)
    with tenant_context(org):
        seg = w.segments(org, {"All": w.customers(org, 4, "two")})["All"]
        first = w.campaign(org, [seg.pk], name="First")
        services.campaign_send(organization=org, campaign=first, sync=True)
        second = w.campaign(org, [seg.pk], name="Second")
    assert len(mail.outbox) == 3
    # starting a send with the day's emails used up: it starts (202) and says so
    response = api.post(f"/api/v1/campaigns/{second.pk}/send/", {}, format="json")
    assert response.status_code == 202, response.content
    notice = response.json()["notice"]
    assert notice["code"] == "limit_reached" and notice["limit"] == "emails_per_day"
    assert notice["message"] == (
        "Your plan's limit of 3 emails a day is reached: this send's messages wait until "
        "tomorrow (00:00 UTC). Ask Segmenta support to raise it."
    )
    with tenant_context(org):
        second.refresh_from_db()
        services._run_now(second.job)
        second.job.refresh_from_db()
        assert second.job.message.startswith("Sent 0 messages. Your plan's limit of 3 emails")
        assert "4 messages wait until tomorrow" in second.job.message
        assert AuditLogEntry.objects.filter(action="limit_reached").count() == 1
    assert len(mail.outbox) == 3


def test_the_site_says_so_when_a_send_starts_with_the_days_emails_used_up(org, owner_client):
    _limit(org, 0)
    with tenant_context(org):
        seg = w.segments(org, {"All": w.customers(org, 1, "site")})["All"]
        campaign = w.campaign(org, [seg.pk])
    response = owner_client.post(f"/campaigns/{campaign.pk}/send/", follow=True)
    page = response.content.decode()
    assert "this send&#x27;s messages wait until tomorrow (00:00 UTC)" in page
    assert "Sending has started" not in page


def test_sms_sends_do_not_count_against_emails_per_day(in_org):
    import zoneinfo

    org = in_org
    _limit(org, 0)
    # SMS wait out quiet hours: put them where the clock is not, whatever the hour.
    hour = timezone.now().astimezone(zoneinfo.ZoneInfo(org.time_zone or "UTC")).hour
    services.campaign_settings_update(
        organization=org,
        data={"quiet_start_hour": (hour + 2) % 24, "quiet_end_hour": (hour + 3) % 24},
    )
    seg = w.segments(org, {"All": w.customers(org, 2, "sms", email=False, sms=True)})["All"]
    campaign = w.campaign(org, [seg.pk], channel="sms", subject="")
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    done = sending.campaign_send_run(campaign_id=campaign.pk)
    assert done["sent"] == 2 and "limit_reached" not in done


def test_messages_in_hand_elsewhere_count_towards_the_day(in_org):
    """Two sends at once: what another send has claimed counts (rules.claim_within_limit
    claims under a lock), so together they never pass the limit."""
    org = in_org
    _limit(org, 3)
    seg = w.segments(org, {"All": w.customers(org, 4, "hand")})["All"]
    other = w.campaign(org, [seg.pk], name="Other")
    Campaign.objects.filter(pk=other.pk).update(status="sending")
    sending.write_deliveries(other)
    in_hand = list(Delivery.objects.filter(campaign=other).order_by("pk")[:2])
    Delivery.objects.filter(pk__in=[d.pk for d in in_hand]).update(status=DeliveryStatus.SENDING)
    mine = w.campaign(org, [seg.pk], name="Mine")
    Campaign.objects.filter(pk=mine.pk).update(status="sending")
    sending.write_deliveries(mine)
    ids = list(Delivery.objects.filter(campaign=mine).values_list("pk", flat=True))
    claimed, limited = rules.claim_within_limit(org, ids)
    assert len(claimed) == 1 and limited
    states = Counter(Delivery.objects.filter(campaign=mine).values_list("status", flat=True))
    assert states == {"sending": 1, "queued": 3}


def _today_there(org) -> dt.date:
    """Today in the organisation's time zone (where birthdays are counted)."""
    import zoneinfo

    return timezone.now().astimezone(zoneinfo.ZoneInfo(org.time_zone or "UTC")).date()


def make_automation(org) -> Automation:
    data = {
        "name": "Birthday",
        "trigger": {"kind": "birthday", "params": {}},
        "message": {"channel": "email", "subject": "Hi {{ first_name }}", "body": "Hello"},
    }
    automation = auto.automation_create(organization=org, data=data)
    Automation.objects.filter(pk=automation.pk).update(
        watch_from=timezone.now() - dt.timedelta(days=1)
    )
    automation.refresh_from_db()
    return automation


def test_automations_respect_emails_per_day(in_org, monkeypatch):
    org = in_org
    _limit(org, 3)
    people = w.customers(org, 5, "bday")
    Customer.objects.filter(pk__in=[p.pk for p in people]).update(
        birth_date=_today_there(org).replace(year=1990)
    )
    automation = make_automation(org)
    result = auto.automations_evaluate(organization=org)
    assert result["sent"] == 3 and len(mail.outbox) == 3
    assert result["limit_reached"]["waiting"] == 2
    assert result["message"].endswith(LIMIT_2)
    waiting = Delivery.objects.filter(campaign__automation=automation, status=DeliveryStatus.QUEUED)
    assert set(waiting.values_list("scheduled_for", flat=True)) == {rules.next_day_start()}
    assert AuditLogEntry.objects.filter(action="limit_reached").count() == 1
    # evaluated again today: nothing more goes
    assert auto.automations_evaluate(organization=org)["sent"] == 0
    # the next day the two waiting go (the automation's next run, or send_due)
    _tomorrow(monkeypatch)
    assert auto.automations_evaluate(organization=org)["sent"] == 2
    assert sorted(_once_each()) == sorted(p.email for p in people)
