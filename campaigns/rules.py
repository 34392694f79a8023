"""The back office's rules for sending (issue 17).

- A suspended organisation sends nothing: the periodic `send_due` and
  `automations_due` pass it by (a scheduled campaign stays scheduled and goes after
  reactivation), and a send running when it is suspended stops between batches with
  `core.jobs.JobPaused` — what was not handed over stays queued, nothing is sent twice.
- An organisation hands over at most `emails_per_day` emails (its limits,
  `accounts.limits`) in a UTC day, campaigns and automations together. Counted: its
  email deliveries with `sent_at` today, plus those claimed for hand-off right now.
  A batch is claimed under a lock per organisation, so two sends at once never pass
  the limit together. What is over the limit stays queued with `scheduled_for` the
  start of the next UTC day, and `send_due` carries on then (as for deliveries
  waiting for a best hour or the end of quiet hours). One `limit_reached` audit entry
  a day tells the owner (accounts.limits.limit_reached_audit).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection, transaction
from django.utils import timezone

from core.jobs import JobPaused

from .models import Channel, Delivery, DeliveryStatus

log = logging.getLogger("segmenta.campaigns")

PAUSED_NOTICE = "Paused: the organisation is suspended"
LIMIT = "emails_per_day"
_LOCK_SPACE = 0x5E6D  # the high 32 bits of the PostgreSQL advisory lock key


# --- suspension -------------------------------------------------------------------------
def organization_active(organization_id: int) -> bool:
    """Whether the organisation may send (accounts.suspension)."""
    from accounts.suspension import organization_is_active

    return organization_is_active(organization_id)


def paused(organization) -> JobPaused:
    """ "Paused while <organisation> is suspended." (the job's message)"""
    from accounts.suspension import paused_message

    return JobPaused(paused_message(organization))


def check_active(organization) -> None:
    """Stop the job (JobPaused) when the organisation is suspended."""
    if not organization_active(organization.pk):
        log.info("campaign.paused_suspended org_id=%s", organization.pk)
        raise paused(organization)


# --- emails a day -----------------------------------------------------------------------
def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight UTC starting `now`'s day."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def next_day_start(now: dt.datetime | None = None) -> dt.datetime:
    return day_start(now) + dt.timedelta(days=1)


def emails_used_today(now: dt.datetime | None = None) -> int:
    """The current organisation's emails handed over today (UTC), with those being
    handed over now."""
    sent = Delivery.objects.filter(channel=Channel.EMAIL, sent_at__gte=day_start(now)).count()
    in_hand = Delivery.objects.filter(channel=Channel.EMAIL, status=DeliveryStatus.SENDING).count()
    return sent + in_hand


def emails_left_today(organization, now: dt.datetime | None = None) -> int:
    from accounts.limits import limits_for

    return max(0, limits_for(organization).emails_per_day - emails_used_today(now))


def limit_reached(organization, waiting: int):
    """The `LimitReached` naming how many messages wait until tomorrow."""
    from accounts.limits import LimitReached, limits_for

    words = "message waits" if waiting == 1 else "messages wait"
    return LimitReached(LIMIT, limits_for(organization), f"{waiting:,} {words} until tomorrow")


def start_notice(organization, campaign) -> dict | None:
    """What the person starting an email send now is told when today's emails are used
    up already (the send starts; its messages wait until the next UTC day)."""
    from accounts.limits import LimitReached, limits_for

    if campaign.channel != Channel.EMAIL or emails_left_today(organization) > 0:
        return None
    exc = LimitReached(
        LIMIT,
        limits_for(organization),
        "this send's messages wait until tomorrow (00:00 UTC)",
    )
    return {"code": exc.code, "message": exc.message, **exc.extra}


def _lock(organization_id: int) -> None:
    """One claimer of the organisation's emails at a time (inside a transaction). On
    SQLite the claim's UPDATE, done first, holds the database's write lock instead."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [(_LOCK_SPACE << 32) | int(organization_id)]
            )


def claim_within_limit(organization, ids: list[int]) -> tuple[list[int], bool]:
    """Claim the queued email deliveries `ids` (queued -> sending) as far as today's
    limit allows; the rest stay queued. Returns (claimed ids, whether the limit
    stopped any). Committed when it returns."""
    from accounts.limits import limits_for

    limit = limits_for(organization).emails_per_day
    with transaction.atomic():
        _lock(organization.pk)
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SENDING
        )
        claimed = list(
            Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        over = emails_used_today() - limit
        if over <= 0:
            return claimed, False
        keep = claimed[: max(0, len(claimed) - over)]
        back = claimed[len(keep) :]
        Delivery.objects.filter(pk__in=back).update(status=DeliveryStatus.QUEUED)
        return keep, True


def campaign_notice(campaign, organization=None) -> dict | None:
    """Why a campaign's messages wait, for its page and the API: the organisation is
    suspended (`organization_suspended`), or the day's emails ran out
    (`limit_reached`, with how many wait and until when). None otherwise."""
    from accounts.suspension import SUSPENDED_CODE

    if campaign.status not in ("scheduled", "sending"):
        return None
    organization = organization or campaign.organization
    if organization is not None and organization.status != "active":
        return {"code": SUSPENDED_CODE, "message": PAUSED_NOTICE}
    reached = (campaign.counts or {}).get("limit_reached")
    if campaign.status == "sending" and reached:
        return dict(reached)
    return None
