"""The send job: at most once per person, restarts, concurrency, headers and events."""

from __future__ import annotations

import smtplib
from collections import Counter

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from campaigns import sending, services
from campaigns.models import Campaign, Delivery, DeliveryStatus
from campaigns.tests import sendworld as w
from core.exceptions import ApplicationError
from core.models import Job
from customers.models import Event


class Crash(BaseException):
    """The worker dying mid-batch (not an error the job could catch)."""


def _sending(org, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")


def test_a_restarted_send_sends_no_duplicates(in_org, monkeypatch):
    org = in_org
    people = w.customers(org, 23, "rs")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    _sending(org, campaign)
    real = LocmemBackend.send_messages
    handed = []

    def dying(self, messages):
        if len(handed) == 12:  # the 13th message: the worker dies in the middle of batch 3
            raise Crash
        handed.extend(m.to[0] for m in messages)
        return real(self, messages)

    monkeypatch.setattr(LocmemBackend, "send_messages", dying)
    with pytest.raises(Crash):
        sending.campaign_send_run(campaign_id=campaign.pk, batch_size=5)
    rows = Delivery.objects.filter(campaign=campaign)
    # two whole batches and two of the third were handed over and recorded; the 13th
    # was in hand when the worker died (it may have left); the last two of the batch
    # were never tried and went back to the queue
    assert rows.filter(status=DeliveryStatus.SENT).count() == 12
    assert rows.filter(status=DeliveryStatus.SENDING).count() == 1

    monkeypatch.setattr(LocmemBackend, "send_messages", real)
    done = sending.campaign_send_run(campaign_id=campaign.pk, batch_size=5)
    assert done["interrupted"] == 1
    times = Counter(m.to[0] for m in mail.outbox)
    assert max(times.values()) == 1  # nobody got it twice
    assert len(mail.outbox) == 12 + 10  # before the crash, then the 10 never tried
    failed = rows.filter(status=DeliveryStatus.FAILED)
    assert failed.count() == 1
    assert set(failed.values_list("error", flat=True)) == {"interrupted: not resent"}
    assert rows.filter(status=DeliveryStatus.SENT).count() == 22
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    # a third run (a redelivered task) sends nothing more
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    sending.campaign_send_run(campaign_id=campaign.pk, batch_size=5)
    assert len(mail.outbox) == 22


def test_the_snapshot_is_taken_when_the_send_starts(in_org, monkeypatch):
    org = in_org
    first = w.customers(org, 3, "sn")
    segs = w.segments(org, {"All": first})
    campaign = w.campaign(org, [segs["All"].pk])
    _sending(org, campaign)
    monkeypatch.setattr(
        LocmemBackend, "send_messages", lambda self, m: (_ for _ in ()).throw(Crash)
    )
    with pytest.raises(Crash):
        sending.campaign_send_run(campaign_id=campaign.pk)
    # someone joins the segment after the send started: not in this send
    from segmentation.models import SegmentMembership

    late = w.customers(org, 1, "late")[0]
    run_id = SegmentMembership.objects.filter(segment=segs["All"]).values_list("run_id", flat=True)[
        0
    ]
    SegmentMembership.objects.create(
        organization=org, run_id=run_id, segment=segs["All"], customer=late
    )
    monkeypatch.undo()
    sending.campaign_send_run(campaign_id=campaign.pk)
    assert not Delivery.objects.filter(campaign=campaign, customer=late).exists()


def test_a_second_send_while_one_runs_answers_409_naming_the_job(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 2, "cc")})["All"]
    campaign = w.campaign(org, [seg.pk])
    job = services.campaign_send(organization=org, campaign=campaign)  # queued, not run yet
    assert job.status == "queued"
    with pytest.raises(ApplicationError) as err:
        services.campaign_send(organization=org, campaign=campaign)
    assert err.value.status == 409
    assert err.value.extra["job"] == job.pk
    assert str(job.pk) in err.value.message
    assert Job.objects.filter(kind="campaign_send").count() == 1


def test_a_sent_campaign_is_not_sent_again(in_org):
    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 2, "tw")})["All"]
    campaign = w.campaign(org, [seg.pk])
    services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert len(mail.outbox) == 2
    with pytest.raises(ApplicationError) as err:
        services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert err.value.status == 409
    assert len(mail.outbox) == 2


def test_each_email_is_personal_with_unsubscribe_headers_and_an_event(in_org):
    org = in_org
    people = w.customers(org, 2, "pe")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    services.campaign_send(organization=org, campaign=campaign, sync=True)
    by_to = {m.to[0]: m for m in mail.outbox}
    message = by_to[people[0].email]
    assert message.subject == f"Hello {people[0].first_name}"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Unsubscribe"].startswith("<http")
    html = message.alternatives[0][0]
    assert people[0].first_name in html
    assert 'href="https://shop.example/new"' not in html  # the link is tracked
    assert "https://shop.example/new" not in message.body
    events = Event.objects.filter(type="message_sent", customer=people[0])
    assert events.count() == 1
    props = events.get().properties
    assert props["campaign_id"] == campaign.pk and props["channel"] == "email"
    delivery = Delivery.objects.get(campaign=campaign, customer=people[0])
    assert delivery.status == "sent" and delivery.sent_at and delivery.message_id


def test_a_5xx_at_hand_off_is_a_hard_bounce(in_org, monkeypatch):
    org = in_org
    people = w.customers(org, 2, "bo")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    real = LocmemBackend.send_messages
    bounced = []

    def refuse(self, messages):
        if messages[0].to[0] == people[0].email:
            raise smtplib.SMTPRecipientsRefused({people[0].email: (550, b"No such user")})
        return real(self, messages)

    monkeypatch.setattr(LocmemBackend, "send_messages", refuse)
    monkeypatch.setattr(
        "campaigns.tracking.record_bounce",
        lambda delivery, *, hard, reason: bounced.append((delivery.customer_id, hard)),
    )
    services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert bounced == [(people[0].pk, True)]
    assert Delivery.objects.get(campaign=campaign, customer=people[0]).status == "bounced"
    assert Delivery.objects.get(campaign=campaign, customer=people[1]).status == "sent"


def test_thompson_sends_more_to_the_better_arm_as_results_arrive(in_org, monkeypatch):
    """Simulated responses: after each batch, arm B's recipients click at 30%, A's at 5%."""
    import random

    org = in_org
    people = w.customers(org, 300, "ts")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk], allocation="thompson")
    a = w.variant(org, campaign, "A")
    b = w.variant(org, campaign, "B")
    rate = {a.pk: 0.05, b.pk: 0.30}
    rng = random.Random(3)
    real = sending._hand_over_batch

    def respond(campaign_, rows, messages, contexts):
        sent, failed = real(campaign_, rows, messages, contexts)
        from django.utils import timezone

        for row in sent:
            if rng.random() < rate[row.variant_id]:
                row.clicked_at = timezone.now()
        Delivery.objects.bulk_update(sent, ["clicked_at"])
        return sent, failed

    monkeypatch.setattr(sending, "_hand_over_batch", respond)
    _sending(org, campaign)
    sending.campaign_send_run(campaign_id=campaign.pk, batch_size=20)
    counts = Counter(
        Delivery.objects.filter(campaign=campaign, status="sent").values_list(
            "variant_id", flat=True
        )
    )
    assert counts[a.pk] + counts[b.pk] == 300
    assert counts[b.pk] > 2 * counts[a.pk]


def test_send_due_resumes_deliveries_waiting_for_their_time(in_org):
    import datetime as dt

    from django.utils import timezone

    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 3, "wt")})["All"]
    campaign = w.campaign(org, [seg.pk])
    services.campaign_send(organization=org, campaign=campaign, sync=True)
    # pretend one customer was deferred (quiet hours) and is now due
    later = w.campaign(org, [seg.pk], name="Later")
    _sending(org, later)
    sending.write_deliveries(later)
    Delivery.objects.filter(campaign=later).update(
        scheduled_for=timezone.now() + dt.timedelta(hours=1)
    )
    sending.campaign_send_run(campaign_id=later.pk)
    later.refresh_from_db()
    assert later.status == "sending"  # waiting
    assert len(mail.outbox) == 3
    assert services.campaigns_start_due(now=timezone.now()) == 0  # not due yet
    assert services.campaigns_start_due(now=timezone.now() + dt.timedelta(hours=2)) == 1
    later.refresh_from_db()
    assert later.job.status == "queued"


def test_long_html_lines_are_broken_inside_tags_only():
    html = "<p>" + '<a href="https://x.example/1" style="color: red">Word</a> more ' * 60 + "</p>"
    out = sending.short_lines(html)
    assert max(len(line) for line in out.splitlines()) <= 998
    assert out.replace("\n", " ") == html  # only a space inside a tag became a line break
    assert sending.short_lines("<p>short</p>") == "<p>short</p>"


def test_a_failed_send_says_why_and_can_be_sent_again(in_org, monkeypatch):
    org = in_org
    people = w.customers(org, 4, "fa")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])

    def broken(ids, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("campaigns.rendering.customer_contexts", broken)
    job = services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert job.status == "failed"
    assert campaign.status == "failed" and "Send it again" in campaign.message
    assert mail.outbox == []
    monkeypatch.undo()
    job = services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert job.status == "succeeded" and campaign.status == "sent"
    # the batch claimed before the failure was never handed over: back in the queue, sent now
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in people)
    assert not Delivery.objects.filter(campaign=campaign, status="failed").exists()


def test_a_lost_connection_stops_the_batch_and_the_rest_wait(in_org, monkeypatch):
    org = in_org
    people = w.customers(org, 6, "lc")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    _sending(org, campaign)
    real = LocmemBackend.send_messages

    def drop(self, messages):
        if len(mail.outbox) == 2:
            raise smtplib.SMTPServerDisconnected("gone")
        return real(self, messages)

    monkeypatch.setattr(LocmemBackend, "send_messages", drop)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        sending.campaign_send_run(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == "failed" and "Send it again" in campaign.message
    rows = Delivery.objects.filter(campaign=campaign)
    assert rows.filter(status="sent").count() == 2
    assert rows.filter(status="sending").count() == 1  # in hand when the connection went
    assert rows.filter(status="queued").count() == 3
    monkeypatch.undo()
    services.campaign_send(organization=org, campaign=campaign, sync=True)
    assert len(mail.outbox) == 5 and len({m.to[0] for m in mail.outbox}) == 5
    assert rows.filter(status="failed", error="interrupted: not resent").count() == 1


class _Smtp:
    """A local SMTP server that refuses one mailbox with 550 and keeps the rest."""

    def __init__(self, refuse: str):
        self.refuse = refuse
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address == self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 OK"


def test_a_send_through_a_real_smtp_server_with_a_hard_bounce(in_org, settings):
    import email
    import email.policy
    import socket

    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    org = in_org
    people = w.customers(org, 3, "smtp")
    seg = w.segments(org, {"All": people})["All"]
    campaign = w.campaign(org, [seg.pk])
    handler = _Smtp(refuse=people[1].email)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        job = services.campaign_send(organization=org, campaign=campaign, sync=True)
    finally:
        controller.stop()
    assert job.status == "succeeded", job.message
    got = sorted(e.rcpt_tos[0] for e in handler.envelopes)
    assert got == sorted([people[0].email, people[2].email])
    parsed = email.message_from_bytes(
        handler.envelopes[0].original_content, policy=email.policy.default
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_body(("html",)) is not None and parsed.get_body(("plain",)) is not None
    refused = Delivery.objects.get(campaign=campaign, customer=people[1])
    assert refused.status == "bounced" and "550" in refused.error
    later = w.campaign(org, [seg.pk], name="Later")
    audit = services.campaign_audit(later)
    assert audit["sendable"] == 2  # a hard bounce stops later sends to that address
    assert audit["skipped_no_consent"] + audit["skipped_suppressed"] == 1


def test_one_job_sends_a_campaign_at_a_time(in_org):
    from core.jobs import job_rerun

    org = in_org
    seg = w.segments(org, {"All": w.customers(org, 3, "one")})["All"]
    campaign = w.campaign(org, [seg.pk])
    first = services.campaign_send(organization=org, campaign=campaign)  # queued
    # a second job for the same campaign (say, started by hand) finds it taken
    from campaigns.tasks import campaign_send as task

    stray = Job.objects.create(organization=org, kind="campaign_send", params={"_task": task.name})
    task.apply(kwargs={"organization_id": org.pk, "job_id": stray.pk, "campaign_id": campaign.pk})
    assert mail.outbox == []
    stray.refresh_from_db()
    assert "not being sent by this job" in stray.message
    # the campaign's own job sends; a re-run of it after it finished sends nobody again
    services._run_now(first)
    assert len(mail.outbox) == 3
    first.refresh_from_db()
    again = job_rerun(job=first)
    services._run_now(again)
    assert len(mail.outbox) == 3


def test_the_organisations_send_rate_is_respected(org, settings):
    """With 3 messages a minute and 2 sent in the last minute, one more may leave now;
    at the limit the send waits (and checks for a cancel) until the minute moves on."""
    import datetime as dt
    import secrets

    from django.utils import timezone

    from accounts.tenancy import tenant_context
    from campaigns.models import Campaign, Delivery, DeliveryStatus
    from campaigns.sending import _within_rate
    from core.jobs import NULL_JOB
    from customers.models import Customer

    settings.CAMPAIGN_SEND_RATE_PER_MINUTE = 3
    with tenant_context(org):
        campaign = Campaign.objects.create(organization=org, name="Rate", body="Hi")
        people = [
            Customer.objects.create(organization=org, external_id=f"R{i}", email=f"r{i}@e.com")
            for i in range(3)
        ]
        for person in people[:2]:
            Delivery.objects.create(
                organization=org, campaign=campaign, customer=person, channel="email",
                status=DeliveryStatus.SENT, token=secrets.token_hex(16), sent_at=timezone.now(),
            )  # fmt: skip
        assert _within_rate(NULL_JOB) == 1
        Delivery.objects.create(
            organization=org, campaign=campaign, customer=people[2], channel="email",
            status=DeliveryStatus.SENT, token=secrets.token_hex(16), sent_at=timezone.now(),
        )  # fmt: skip
        waited = []

        def sleep(seconds):
            waited.append(seconds)
            Delivery.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=2))

        assert _within_rate(NULL_JOB, sleep=sleep) == 3
        assert waited == [1.0]
    settings.CAMPAIGN_SEND_RATE_PER_MINUTE = 0
    assert _within_rate(NULL_JOB) >= 10**6
