"""The send job: write every delivery, then hand the messages over in batches.

At most once, whatever happens to the worker:

1. Every customer the campaign names gets its Delivery row first (queued, skipped
   with the reason, or held out), in bulk, ignoring rows that exist already (unique
   per campaign and customer): the snapshot of recipients is taken once, when the
   send starts, and a restarted job keeps it.
2. Each batch of queued rows is claimed (`queued` -> `sending`, one UPDATE) and that
   is committed *before* anything is handed over. Only then are messages rendered
   (each variant compiled once, personalised per customer) and handed to Django's
   email connection (one per batch) or the SMS backend; the rows become `sent` with
   a `message_sent` event.
3. A job that starts again after a crash finds rows still `sending`: they may or may
   not have left, so they become `failed` ("interrupted: not resent") — never sent
   twice. The rest carries on from the queue.

Rows waiting for a customer's best hour or the end of SMS quiet hours
(`scheduled_for`) stay queued; `campaigns.tasks.send_due` resumes the send then.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import smtplib
import time
from collections.abc import Callable
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.jobs import NULL_JOB, JobHandle

from . import rules
from .models import (
    Allocation,
    Campaign,
    CampaignStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    TrackedLink,
    Variant,
)

log = logging.getLogger("segmenta.campaigns")

BATCH = 500
WRITE_CHUNK = 2000
INTERRUPTED = "interrupted: not resent"
TEST_CODE = "(each customer's own code)"
TEST_SURVEY_LINK = "(each customer's own survey link)"


# --- step 1: the delivery rows ------------------------------------------------------------
def write_deliveries(campaign: Campaign) -> dict[str, int]:
    """Plan and write every delivery of the campaign (once: a restart keeps the rows
    and counts written the first time)."""
    from .services import campaign_plan, campaign_recipients_plan

    if campaign.counts.get("snapshot_at"):
        return campaign.counts
    plan = campaign_recipients_plan(campaign)
    rows = [
        Delivery(
            organization_id=campaign.organization_id,
            campaign=campaign,
            customer_id=d.customer_id,
            variant_id=d.variant_id,
            channel=campaign.channel,
            status=d.status,
            skip_reason=d.skip_reason,
            to_address=d.to_address,
            token=secrets.token_hex(16),
            segment_id=d.segment_id,
            persona_id=d.persona_id,
            scheduled_for=d.scheduled_for,
        )
        for d in plan.decisions
    ]
    counts = {**plan.counts, "snapshot_at": timezone.now().isoformat()}
    with transaction.atomic():
        for start in range(0, len(rows), WRITE_CHUNK):
            Delivery.objects.bulk_create(rows[start : start + WRITE_CHUNK], ignore_conflicts=True)
        Campaign.objects.filter(pk=campaign.pk).update(counts=counts, plan=campaign_plan(campaign))
    campaign.counts = counts
    return counts


# --- Thompson sampling ------------------------------------------------------------------
def arm_results(campaign: Campaign, arms: list[Variant]) -> dict[int, tuple[int, int]]:
    """(successes, failures) per arm so far: conversions when any arm has one, else
    clicks (conversions come days later; clicks within hours)."""
    sent_rows = Delivery.objects.filter(
        campaign=campaign, variant_id__in=[a.pk for a in arms], status=DeliveryStatus.SENT
    )
    sent: dict[int, int] = {}
    clicked: dict[int, int] = {}
    converted: dict[int, int] = {}
    for variant_id, clicked_at, converted_at in sent_rows.values_list(
        "variant_id", "clicked_at", "converted_at"
    ).iterator(chunk_size=5000):
        sent[variant_id] = sent.get(variant_id, 0) + 1
        clicked[variant_id] = clicked.get(variant_id, 0) + (clicked_at is not None)
        converted[variant_id] = converted.get(variant_id, 0) + (converted_at is not None)
    use = converted if any(converted.values()) else clicked
    return {a.pk: (use.get(a.pk, 0), sent.get(a.pk, 0) - use.get(a.pk, 0)) for a in arms}


def _assign_thompson(campaign: Campaign, rows: list[Delivery], arms: list[Variant]) -> None:
    from .stats import thompson_assign

    unassigned = [r for r in rows if r.variant_id is None]
    if not unassigned or not arms:
        return
    results = arm_results(campaign, arms)
    seed = hash((campaign.pk, unassigned[0].pk)) & 0xFFFFFFFF
    picks = thompson_assign(
        [results[a.pk][0] for a in arms],
        [results[a.pk][1] for a in arms],
        len(unassigned),
        seed=seed,
    )
    by_arm: dict[int, list[int]] = {}
    for row, pick in zip(unassigned, picks, strict=True):
        row.variant_id = arms[pick].pk
        by_arm.setdefault(row.variant_id, []).append(row.pk)
    for variant_id, ids in by_arm.items():
        Delivery.objects.filter(pk__in=ids).update(variant_id=variant_id)


# --- rendering and hand-off -------------------------------------------------------------
class Messages:
    """Each variant's templates compiled once; tracked links cached per URL.

    A survey's link is tracked as one link of the campaign, whoever gets it: the
    message carries the survey's public address (stored once as the campaign's
    TrackedLink) behind each customer's click link, and the click lands on that
    customer's own personal link (links.click_target). So the words are the same for
    every customer (rendered and cached once) and a send stores one link, not one a
    customer."""

    def __init__(self, campaign: Campaign):
        from .rendering import compile_message
        from .services import campaign_survey

        self.campaign = campaign
        self.compiled: dict[int | None, Any] = {}
        self._compile = compile_message
        self._variants = {v.pk: v for v in Variant.objects.filter(campaign=campaign)}
        self._links: dict[str, TrackedLink] = {}
        survey = campaign_survey(campaign)
        self.survey_url = ""
        if survey is not None:
            from research.links import public_url

            self.survey_url = public_url(survey)

    def compiled_for(self, variant_id: int | None):
        if variant_id not in self.compiled:
            source = self._variants.get(variant_id) if variant_id else None
            source = source or self.campaign
            self.compiled[variant_id] = self._compile(
                channel=self.campaign.channel, subject=source.subject, body=source.body
            )
        return self.compiled[variant_id]

    def tracked(self, url: str) -> TrackedLink:
        from .links import tracked_link_for

        if url not in self._links:
            self._links[url] = tracked_link_for(self.campaign, url)
        return self._links[url]

    def render(self, delivery: Delivery, ctx: dict):
        from . import links

        def link(url: str) -> str:
            return links.click_url(delivery, self.tracked(url))

        if self.survey_url and ctx.get("survey_link"):
            ctx = {**ctx, "survey_link": self.survey_url}
        compiled = self.compiled_for(delivery.variant_id)
        return compiled.render(
            ctx,
            link=link,
            unsubscribe_url=links.unsubscribe_url(delivery),
            open_pixel_url=links.open_pixel_url(delivery)
            if self.campaign.channel == Channel.EMAIL
            else "",
            preferences_url=links.preferences_url(delivery),
        )


def from_email(organization) -> tuple[str, list[str]]:
    from email.utils import formataddr, parseaddr

    from .services import campaign_settings_get

    current = campaign_settings_get(organization=organization)
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    sender = formataddr((current.from_name or organization.name or name, address))
    return sender, [current.reply_to] if current.reply_to else []


def outbox_headers(delivery: Delivery) -> dict[str, str]:
    """Headers the development outbox reads to file the message under the customer and
    delivery (campaigns/backends.py; other backends leave them be)."""
    from .backends import outbox_headers as headers

    return headers(
        organization_id=delivery.organization_id,
        customer_id=delivery.customer_id,
        delivery_id=delivery.pk,
    )


def email_message(
    *, rendered, to: str, sender: str, reply_to: list[str], headers: dict[str, str], connection
) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=sender,
        to=[to],
        reply_to=reply_to,
        headers=headers,
        connection=connection,
    )
    if rendered.html:
        message.attach_alternative(short_lines(rendered.html), "text/html")
    return message


_TAG_OPEN = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*) ")


def short_lines(html: str) -> str:
    """The HTML with no line over 998 characters, by breaking lines inside opening tags
    (where a line break means nothing): Django then sends it as 8-bit text instead of
    quoted-printable, which took half the time of a send (bench/campaigns_send.py)."""
    if all(len(line) <= 998 for line in html.splitlines()):
        return html
    return _TAG_OPEN.sub("<\\1\n", html)


def _is_hard_bounce(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


# errors that mean the connection itself is gone: the rest of the batch would fail too
CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError)


def release(rows: list[Delivery]) -> None:
    """Put claimed rows whose hand-off never started back in the queue."""
    if rows:
        Delivery.objects.filter(pk__in=[r.pk for r in rows], status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.QUEUED
        )


def _hand_over_batch(
    campaign: Campaign, rows: list[Delivery], messages: Messages, contexts: dict[int, dict]
) -> tuple[list[Delivery], list[Delivery]]:
    """Hand the claimed rows over; returns (sent, failed or bounced) rows. If the batch
    stops part-way (the connection is lost, the job is stopped), the rows not yet tried
    go back to the queue; the one being handed over stays claimed (it may have left)."""
    from . import links

    sent: list[Delivery] = []
    failed: list[Delivery] = []
    now = timezone.now
    tried = 0
    try:
        if campaign.channel == Channel.EMAIL:
            sender, reply_to = from_email(campaign.organization)
            domain = sender.rpartition("@")[2].rstrip(">") or "segmenta.local"
            with get_connection(fail_silently=False) as connection:
                for i, row in enumerate(rows):
                    tried = i  # rows before this one are settled
                    try:
                        rendered = messages.render(row, contexts.get(row.customer_id, {}))
                        headers = {
                            **links.list_unsubscribe_headers(row),
                            **outbox_headers(row),
                            "Message-ID": make_msgid(domain=domain),
                        }
                        message = email_message(
                            rendered=rendered, to=row.to_address, sender=sender,
                            reply_to=reply_to, headers=headers, connection=connection,
                        )  # fmt: skip
                        tried = i + 1  # from here on it may have left
                        connection.send_messages([message])
                    except CONNECTION_ERRORS:
                        raise
                    except Exception as exc:  # one bad message must not stop the batch
                        _mark_problem(row, exc)
                        failed.append(row)
                        continue
                    row.message_id = str(message.extra_headers.get("Message-ID", ""))[:200]
                    row.status, row.sent_at = DeliveryStatus.SENT, now()
                    sent.append(row)
        else:
            from .sms import send_sms

            for i, row in enumerate(rows):
                tried = i
                try:
                    rendered = messages.render(row, contexts.get(row.customer_id, {}))
                    tried = i + 1
                    message_id = send_sms(
                        to=row.to_address, text=rendered.text,
                        organization=campaign.organization, customer=row.customer_id,
                        delivery=row,
                    )  # fmt: skip
                except CONNECTION_ERRORS:
                    raise
                except Exception as exc:
                    _mark_problem(row, exc)
                    failed.append(row)
                    continue
                row.message_id = str(message_id or "")[:200]
                row.status, row.sent_at = DeliveryStatus.SENT, now()
                sent.append(row)
    except BaseException:
        # what was handed over is recorded; the one in hand stays claimed (interrupted)
        _save_results(campaign, sent, failed)
        release(rows[tried:])
        raise
    return sent, failed


def _save_results(campaign: Campaign, sent: list[Delivery], failed: list[Delivery]) -> None:
    with transaction.atomic():
        Delivery.objects.bulk_update(
            sent + failed, ["status", "sent_at", "message_id", "error"], batch_size=1000
        )
        _events(campaign, sent)


def _mark_problem(row: Delivery, exc: Exception) -> None:
    reason = f"{exc.__class__.__name__}: {exc}"[:500]
    if _is_hard_bounce(exc):
        row.status, row.sent_at = DeliveryStatus.BOUNCED, timezone.now()
        row._hard_bounce = reason  # recorded after the batch is saved
    else:
        row.status = DeliveryStatus.FAILED
    row.error = reason
    log.warning("campaign.handoff_failed delivery_id=%s error=%s", row.pk, exc.__class__.__name__)


def _events(campaign: Campaign, rows: list[Delivery]) -> None:
    from customers.models import Event

    Event.objects.bulk_create(
        [
            Event(
                organization_id=campaign.organization_id,
                customer_id=row.customer_id,
                type="message_sent",
                occurred_at=row.sent_at,
                properties={
                    "campaign_id": campaign.pk,
                    "variant_id": row.variant_id,
                    "delivery_id": row.pk,
                    "channel": campaign.channel,
                },
            )
            for row in rows
        ]
    )


def _due(campaign: Campaign):
    now = timezone.now()
    return Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).filter(
        Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now)
    )


def campaign_send_run(*, campaign_id: int, **kwargs) -> dict[str, Any]:
    """The job's body (campaigns.tasks.campaign_send). Safe to run again at any point.
    An error marks the campaign failed with a reason (sending it again resumes where it
    stopped); a worker that dies leaves it sending, and the job's recovery resumes it."""
    from core.jobs import JobPaused

    try:
        return _send_run(campaign_id=campaign_id, **kwargs)
    except JobPaused:
        raise  # the organisation is suspended: the send carries on after reactivation
    except Exception as exc:
        from core.exceptions import ApplicationError
        from core.jobs import JobCancelled

        if isinstance(exc, JobCancelled):
            reason = "it was cancelled"
        elif isinstance(exc, ApplicationError):
            reason = exc.message.rstrip(".")
        else:
            reason = "something went wrong on our side"
        Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).update(
            status=CampaignStatus.FAILED,
            message=f"The send stopped: {reason}. Send it again to carry on; nobody gets it twice."[
                :500
            ],
        )
        raise


SEND_AGAIN = "Send it again to carry on; nobody gets it twice."


def campaign_send_cancelled(*, job) -> None:
    """The `campaign_send` job's `on_cancelled` hook: the job was cancelled before its
    body ran (while queued, or found cancelled when a worker picked it up), so
    `campaign_send_run` never said why it stopped. The campaign it claimed, if still
    "sending" for this very job, becomes failed with the reason; sending it again
    carries on. Idempotent; a campaign a newer job took over is left alone."""
    campaign = Campaign.objects.filter(job_id=job.pk, status=CampaignStatus.SENDING).first()
    if campaign is None:
        return
    # A resumed send (best hour, quiet hours) was cancelled after messages went out.
    went_out = Delivery.objects.filter(campaign=campaign).filter(
        Q(sent_at__isnull=False) | Q(status=DeliveryStatus.SENDING)
    )
    if went_out.exists():
        message = f"The send was cancelled before the rest went out. {SEND_AGAIN}"
    else:
        message = f"The send was cancelled before anything went out. {SEND_AGAIN}"
    Campaign.objects.filter(pk=campaign.pk, job_id=job.pk, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.FAILED, message=message[:500]
    )
    log.info("campaign.send_cancelled campaign_id=%s job_id=%s", campaign.pk, job.pk)


def _take(campaign: Campaign, job_id: int | None) -> bool:
    """Make `job_id` the campaign's one sending job: it is already, or the job named
    before has finished (a re-run after a failure). One conditional UPDATE, so of two
    jobs starting together only one sends; None (no job: a direct call) always may."""
    from core.models import Job, JobStatus

    if job_id is None or campaign.job_id == job_id:
        ok = True
    else:
        current = campaign.job_id
        busy = (JobStatus.QUEUED, JobStatus.RUNNING)
        if current and Job.objects.filter(pk=current, status__in=busy).exists():
            return False
        ok = bool(Campaign.objects.filter(pk=campaign.pk, job_id=current).update(job_id=job_id))
    if ok and campaign.status != CampaignStatus.SENDING:
        Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING, message="")
        campaign.status = CampaignStatus.SENDING
    return ok


def send_rate_per_minute() -> int:
    """Messages one organisation may hand over per minute, all its campaigns and
    automations together (settings.CAMPAIGN_SEND_RATE_PER_MINUTE; 0: no limit)."""
    return int(getattr(settings, "CAMPAIGN_SEND_RATE_PER_MINUTE", 0) or 0)


def _within_rate(
    job: JobHandle, percent: float = 5, *, sleep: Callable[[float], None] | None = None
) -> int:
    """How many messages may leave now without passing the organisation's rate; waits
    (checking for a cancel) while the last minute's sends already reach it."""
    rate = send_rate_per_minute()
    if rate <= 0:
        return 10**9
    while True:
        since = timezone.now() - dt.timedelta(seconds=60)
        recent = Delivery.objects.filter(sent_at__gte=since).count()  # this organisation
        if recent < rate:
            return rate - recent
        job.progress(percent, "Waiting: the organisation's sending rate limit was reached")
        job.check_cancel()
        (sleep or time.sleep)(1.0)


def _send_run(
    *,
    campaign_id: int,
    job: JobHandle = NULL_JOB,
    batch_size: int = BATCH,
    contexts_for: Callable | None = None,
) -> dict[str, Any]:
    from .rendering import customer_contexts
    from .services import campaign_offer, campaign_survey, campaign_variants

    campaign = Campaign.objects.select_related("organization").filter(pk=campaign_id).first()
    resumable = (CampaignStatus.SENDING, CampaignStatus.FAILED)
    if campaign is None or campaign.status not in resumable or not _take(campaign, job.job_id):
        return {"message": "Nothing to send: the campaign is not being sent by this job."}
    organization = campaign.organization
    rules.check_active(organization)
    job.progress(2, "Choosing who gets it")
    counts = write_deliveries(campaign)
    interrupted = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.FAILED, error=INTERRUPTED
    )
    if interrupted:
        log.warning("campaign.interrupted campaign_id=%s deliveries=%s", campaign.pk, interrupted)
    _, arms = campaign_variants(campaign)
    thompson = campaign.allocation == Allocation.THOMPSON and bool(arms)
    messages = Messages(campaign)
    offer = campaign_offer(campaign)  # each customer's own code fills `offer_code`
    survey = campaign_survey(campaign)  # and their own link to it `survey_link`
    contexts_for = contexts_for or (
        lambda ids: customer_contexts(ids, organization=organization, offer=offer, survey=survey)
    )
    total = _due(campaign).count()
    done = sent_total = failed_total = 0
    limited = False  # the organisation's emails of the day ran out
    tomorrow = 0  # how many then wait until the next UTC day
    until: dt.datetime | None = None
    job.progress(5, f"Sending to {total:,} customers")
    while True:
        job.check_cancel()
        rules.check_active(organization)  # suspended: stop here, the rest stays queued
        if job.job_id and not Campaign.objects.filter(pk=campaign.pk, job_id=job.job_id).exists():
            break  # another job took the campaign over (a re-run): it carries on
        batch = list(_due(campaign).order_by("pk")[:batch_size])
        if not batch:
            break
        batch = batch[: _within_rate(job, 5 + 93 * done / max(total, 1))]
        if thompson:
            _assign_thompson(campaign, batch, arms)
        ids = [row.pk for row in batch]
        # the claim, committed before anything leaves
        if campaign.channel == Channel.EMAIL:
            ids, limited = rules.claim_within_limit(organization, ids)
        else:
            Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).update(
                status=DeliveryStatus.SENDING
            )
        if limited:
            # the rest waits for the next UTC day; send_due carries on then
            until = rules.next_day_start()
            tomorrow = _due(campaign).update(scheduled_for=until)
            batch = [row for row in batch if row.pk in set(ids)]
            if not ids:
                break
        rows = list(Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SENDING))
        try:
            contexts = contexts_for([row.customer_id for row in rows])
        except BaseException:
            release(rows)  # nothing was handed over
            raise
        sent, failed = _hand_over_batch(campaign, rows, messages, contexts)
        _save_results(campaign, sent, failed)
        for row in failed:
            if getattr(row, "_hard_bounce", None):
                from .tracking import record_bounce

                record_bounce(row, hard=True, reason=row._hard_bounce)
        done += len(batch)
        sent_total += len(sent)
        failed_total += len(failed)
        job.progress(
            5 + 93 * done / max(total, 1), f"Sent {sent_total:,} of {total:,}", force=False
        )
        if limited:
            break
    waiting = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED)
    later = waiting.count()
    finished = {
        **counts,
        "sent": Delivery.objects.filter(
            campaign=campaign, status__in=(DeliveryStatus.SENT, DeliveryStatus.BOUNCED)
        ).count(),
        "failed": Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.FAILED).count(),
        "waiting": later,
    }
    finished.pop("limit_reached", None)
    update: dict[str, Any] = {"counts": finished}
    if not later:
        update.update(status=CampaignStatus.SENT, finished_at=timezone.now())
    message = f"Sent {sent_total:,} messages"
    if failed_total:
        message += f" ({failed_total:,} could not be handed over)"
    result: dict[str, Any] = {
        "campaign_id": campaign.pk,
        "sent": sent_total,
        "failed": failed_total,
        "waiting": later,
        "interrupted": interrupted,
    }
    if limited:
        from accounts.limits import limit_reached_audit

        reached = rules.limit_reached(organization, tomorrow)
        finished["limit_reached"] = {
            "code": reached.code,
            "message": reached.message,
            **reached.extra,
            "waiting": tomorrow,
            "until": until.isoformat() if until else None,
        }
        update["message"] = reached.message[:500]
        limit_reached_audit(organization=organization, error=reached)  # once a day
        result.update(limit_reached=finished["limit_reached"])
        message = f"{message}. {reached.message}"
    else:
        if counts.get("limit_reached"):
            update["message"] = ""  # yesterday's limit: the messages went
        if later:
            message += f"; {later:,} wait for their time (best hour or quiet hours)"
        message += "."
    Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(**update)
    return {"message": message, **result}


# --- a test copy ------------------------------------------------------------------------
def send_test_copy(*, campaign: Campaign, to: str) -> dict[str, Any]:
    """One copy as the first customer it would go to (or with empty merge fields),
    subject marked "[Test]"; links are not tracked and no delivery is written."""
    from .rendering import compile_message, customer_contexts
    from .services import campaign_offer, recipient_ids

    ids, _ = recipient_ids(campaign)
    offer = campaign_offer(campaign)
    ctx = (
        customer_contexts(ids[:1], organization=campaign.organization, offer=offer).get(ids[0], {})
        if ids
        else {}
    )
    if offer is not None:
        # a real customer's code never goes to a team member's inbox
        ctx = {**ctx, "offer_code": TEST_CODE}
    if campaign.survey_id:
        # nor their survey link: an answer through it would count as theirs
        ctx = {**ctx, "survey_link": TEST_SURVEY_LINK}
    compiled = compile_message(
        channel=campaign.channel, subject=campaign.subject, body=campaign.body
    )
    rendered = compiled.render(ctx, unsubscribe_url="#", preferences_url="#")
    sender, reply_to = from_email(campaign.organization)
    subject = f"[Test] {rendered.subject or campaign.name}"
    message = EmailMultiAlternatives(
        subject=subject, body=rendered.text, from_email=sender, to=[to], reply_to=reply_to
    )
    if rendered.html:
        message.attach_alternative(rendered.html, "text/html")
    message.send(fail_silently=False)
    return {"to": to, "subject": subject}


def preview(*, campaign: Campaign, customer, variant_id: int | None = None) -> dict[str, str]:
    """The message as this customer would get it (the variant they would match), links
    left as written."""
    from .rendering import compile_message, customer_contexts
    from .services import campaign_offer, campaign_survey, campaign_variants, fixed_arm

    if variant_id is None:
        targeted, arms = campaign_variants(campaign)
        variant_id = _matching_variant(customer.pk, targeted)
        if variant_id is None and arms:
            variant_id = fixed_arm(campaign.pk, customer.pk, arms).pk
    source = Variant.objects.filter(campaign=campaign, pk=variant_id).first() or campaign
    compiled = compile_message(channel=campaign.channel, subject=source.subject, body=source.body)
    offer = campaign_offer(campaign)
    ctx = customer_contexts(
        [customer.pk],
        organization=campaign.organization,
        offer=offer,
        survey=campaign_survey(campaign),
    ).get(customer.pk, {})
    code = ctx.get("offer_code")
    if campaign.offer_id and not code:
        ctx = {**ctx, "offer_code": _no_code_words(campaign, offer, customer.pk)}
    rendered = compiled.render(ctx, unsubscribe_url="#", preferences_url="#")
    return {
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "variant": variant_id,
        "offer_code": code,
    }


def _no_code_words(campaign: Campaign, offer, customer_id: int) -> str:
    """What the preview shows where a customer without a code would see nothing (they
    are not sent the campaign: campaigns/services.py rule 0)."""
    from offers.models import OfferStatus
    from offers.selectors import holdout_ids

    if offer is None:
        return "(no code: the offer was deleted)"
    if offer.status == OfferStatus.BUILDING:
        return "(no code yet: the offer is still being built)"
    if customer_id in holdout_ids(offer=offer):
        return "(no code: in the offer's hold-out, so not sent this campaign)"
    return "(no code: not among the offer's recipients, so not sent this campaign)"


def _matching_variant(customer_id: int, targeted: list[Variant]) -> int | None:
    from segmentation.models import Persona

    from .services import _member_sets

    persona_segment = dict(
        Persona.objects.filter(pk__in=[v.persona_id for v in targeted if v.persona_id]).values_list(
            "pk", "segment_id"
        )
    )
    members = _member_sets(
        {s for v in targeted for s in v.segment_ids} | set(persona_segment.values())
    )
    for variant in targeted:
        segments = list(variant.segment_ids)
        if variant.persona_id and variant.persona_id in persona_segment:
            segments.append(persona_segment[variant.persona_id])
        if any(customer_id in members.get(s, ()) for s in segments):
            return variant.pk
    return None
