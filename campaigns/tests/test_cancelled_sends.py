"""A send cancelled before its job ran (while queued, or found cancelled when a worker
picked it up) does not leave the campaign "sending" for ever: it fails with a plain
reason, nothing goes out, and sending it again carries on."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from accounts.tenancy import tenant_context
from campaigns import sending, services
from campaigns.models import Campaign, Delivery
from campaigns.tests import sendworld as w
from core.jobs import _send, job_cancel
from core.models import Job, JobStatus

BASE = "/api/v1/campaigns/"
NOTHING_WENT_OUT = (
    "The send was cancelled before anything went out. Send it again to carry on; "
    "nobody gets it twice."
)


@pytest.fixture
def world(org):
    with tenant_context(org):
        people = w.customers(org, 3, "cq")
        seg = w.segments(org, {"All": people})["All"]
        campaign = w.campaign(org, [seg.pk])
    return {"people": people, "campaign": campaign}


def test_cancelling_a_queued_send_fails_the_campaign_and_sending_again_carries_on(
    api, world, django_capture_on_commit_callbacks
):
    campaign = world["campaign"]
    answer = api.post(f"{BASE}{campaign.pk}/send/")
    assert answer.status_code == 202, answer.content
    job_id = answer.json()["job"]
    assert api.get(f"{BASE}{campaign.pk}/").json()["status"] == "sending"

    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    one = api.get(f"{BASE}{campaign.pk}/").json()
    assert (one["status"], one["message"]) == ("failed", NOTHING_WENT_OUT)

    # the queued message still reaches a worker: the job is finished, nothing is sent
    with django_capture_on_commit_callbacks(execute=True):
        _send(Job.all_objects.get(pk=job_id))
    assert mail.outbox == []
    assert api.get(f"{BASE}{campaign.pk}/").json()["status"] == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(f"{BASE}{campaign.pk}/send/")
    assert again.status_code == 202, again.content
    one = api.get(f"{BASE}{campaign.pk}/").json()
    assert (one["status"], one["message"]) == ("sent", "")
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in world["people"])


def test_a_send_found_cancelled_when_a_worker_picks_it_up_fails_the_campaign(in_org, world):
    campaign = world["campaign"]
    job = services.campaign_send(organization=in_org, campaign=campaign)  # queued
    # cancelled while it ran, then its worker died and the job was queued again
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    _send(job)
    job.refresh_from_db()
    assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
    campaign.refresh_from_db()
    assert (campaign.status, campaign.message) == ("failed", NOTHING_WENT_OUT)
    assert mail.outbox == []
    assert not Delivery.objects.filter(campaign=campaign).exists()


def test_a_resumed_send_cancelled_while_queued_says_the_rest_did_not_go_out(in_org, world):
    campaign = world["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    sending.write_deliveries(campaign)
    waiting = Delivery.objects.filter(campaign=campaign).order_by("pk").first()
    later = timezone.now() + dt.timedelta(hours=1)
    Delivery.objects.filter(pk=waiting.pk).update(scheduled_for=later)  # its best hour
    sending.campaign_send_run(campaign_id=campaign.pk)
    assert len(mail.outbox) == 2

    assert services.campaigns_start_due(now=later + dt.timedelta(minutes=1)) == 1
    campaign.refresh_from_db()
    job_cancel(job=campaign.job)
    campaign.refresh_from_db()
    assert campaign.status == "failed"
    assert campaign.message == (
        "The send was cancelled before the rest went out. Send it again to carry on; "
        "nobody gets it twice."
    )
    # the scheduler does not start again what someone cancelled
    assert services.campaigns_start_due(now=later + dt.timedelta(minutes=2)) == 0
    assert len(mail.outbox) == 2


def test_a_campaign_a_newer_send_took_over_is_left_alone(in_org, world):
    campaign = world["campaign"]
    old = services.campaign_send(organization=in_org, campaign=campaign)  # queued
    newer = Job.objects.create(kind="campaign_send", status=JobStatus.RUNNING)
    Campaign.objects.filter(pk=campaign.pk).update(job=newer)
    job_cancel(job=old)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.message, campaign.job_id) == ("sending", "", newer.pk)
