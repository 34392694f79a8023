"""Scheduled work fires once, however many schedulers run.

Celery beat has no notion of another beat: two `celery beat` processes (or two
`worker --beat`, on one host or on several) each send every periodic task, so the
nightly fan-out would queue every organisation's pipeline twice. Every periodic
task of config/celery.py is therefore sent through `OnceScheduler` (the app's
`beat_scheduler`): before sending, it claims the entry's current *slot* with an
insert into `core.ScheduledRun` under a unique (name, slot) constraint. The
scheduler whose insert lands sends the task; every other one finds the row and
sends nothing. The database is the one every scheduler already shares (SQLite in
the embedded mode, PostgreSQL with services), so the claim needs nothing else.

The slot of a send:
- a crontab entry (nightly fan-out, hourly expiry and deletions): the latest minute
  at or before the send that the crontab names. A send on time is its own minute; a
  late one (a beat restarted at 03:10 with a schedule file saying the 02:00 run is
  overdue sends it at once) still belongs to 02:00, so it is dropped if another
  scheduler sent 02:00 already;
- an interval entry (every 60 s, every 15 min): the interval-long bucket of UTC time
  that the send falls in (time since the epoch, floored to a multiple of the
  interval). One scheduler's sends of an entry are at least an interval apart, so
  they never share a bucket; a second scheduler's send in the same bucket is the
  duplicate and is dropped. Schedulers on several hosts need clocks within a few
  seconds of each other (NTP), well under the shortest interval.

The slot is passed on to the task as the message header
`segmenta_schedule_slot` (the logs and the tests read it).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from datetime import UTC, datetime, timedelta

from celery.beat import PersistentScheduler
from celery.schedules import crontab
from celery.schedules import schedule as interval_schedule
from django.db import IntegrityError, transaction

log = logging.getLogger("segmenta.schedule")

SLOT_HEADER = "segmenta_schedule_slot"
# Claims older than this are deleted as new ones are made (a row per minute per
# entry at most: about 3,000 a day). A crontab's slot is looked for this far back.
KEEP_CLAIMS = timedelta(days=8)


def schedule_slot(schedule, now: datetime) -> datetime:
    """The slot (its start, UTC) a send of `schedule` made at `now` belongs to."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    if isinstance(schedule, interval_schedule):
        every = schedule.run_every.total_seconds()
        if every > 0:
            start = math.floor(now.timestamp() / every) * every
            return datetime.fromtimestamp(start, tz=UTC)
    minute = now.replace(second=0, microsecond=0)
    if isinstance(schedule, crontab):
        return _crontab_slot(schedule, minute) or minute
    return minute  # any other kind of schedule: its minute


def _crontab_slot(cron: crontab, minute: datetime) -> datetime | None:
    """The latest minute at or before `minute` that `cron` names (in its time zone),
    looked for back to KEEP_CLAIMS; None if none."""
    tz = cron.tz or UTC
    t = minute.astimezone(tz)
    for _ in range(int(KEEP_CLAIMS.total_seconds() // 60)):
        if (
            t.minute in cron.minute
            and t.hour in cron.hour
            and t.day in cron.day_of_month
            and t.month in cron.month_of_year
            and t.isoweekday() % 7 in cron.day_of_week  # crontab: 0 is Sunday
        ):
            return t.astimezone(UTC)
        t -= timedelta(minutes=1)
    return None


def schedule_claim(name: str, slot: datetime, *, by: str = "") -> bool:
    """Claim the slot of the periodic task `name`: True for the first caller only,
    in this process or any other sharing the database."""
    from .models import ScheduledRun

    try:
        with transaction.atomic():
            ScheduledRun.objects.create(name=name[:200], slot=slot, claimed_by=by[:200])
    except IntegrityError:
        return False
    ScheduledRun.objects.filter(name=name[:200], slot__lt=slot - KEEP_CLAIMS).delete()
    return True


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class OnceScheduler(PersistentScheduler):
    """Celery beat's default scheduler (it keeps its schedule file), except that each
    send first claims the entry's slot (`schedule_claim`): a second scheduler's send
    of a slot already claimed does nothing."""

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if advance:
            entry = self.reserve(entry)
        slot = schedule_slot(entry.schedule, self.app.now())
        try:
            claimed = schedule_claim(entry.name, slot, by=_who())
        except Exception:
            # No database, no claim: sending anyway could run it twice; the next slot
            # (or the other scheduler, if it reaches the database) sends it.
            log.exception("schedule.claim_failed name=%s slot=%s", entry.name, slot.isoformat())
            return None
        if not claimed:
            log.warning(
                "schedule.skip name=%s slot=%s: another scheduler sent it",
                entry.name,
                slot.isoformat(),
            )
            return None
        headers = {**(entry.options.get("headers") or {}), SLOT_HEADER: slot.isoformat()}
        entry = entry.__class__(**dict(entry, options={**entry.options, "headers": headers}))
        return super().apply_async(entry, producer=producer, advance=False, **kwargs)


def recovery_interval(stale_after_seconds: float) -> float:
    """How often beat looks for jobs whose worker died: every minute, or more often
    when jobs go stale sooner (half the staleness, at least every second)."""
    return float(min(60.0, max(1.0, stale_after_seconds / 2)))
