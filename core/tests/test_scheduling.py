"""Scheduled work fires once per slot, however many schedulers send it
(core/scheduling.py). Runs on SQLite and on PostgreSQL (make test-services); the
multi-process proof with two real `celery beat` processes is in
tests/test_multiworker.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from celery.beat import ScheduleEntry
from celery.schedules import crontab
from celery.schedules import schedule as every
from django.db import connections

from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory
from core.models import Job, ScheduledRun
from core.scheduling import (
    KEEP_CLAIMS,
    SLOT_HEADER,
    OnceScheduler,
    recovery_interval,
    schedule_claim,
    schedule_slot,
)

T = datetime(2026, 11, 30, 2, 0, 0, tzinfo=UTC)


def test_an_interval_slot_is_the_bucket_of_time_a_send_falls_in():
    minute = every(timedelta(seconds=60))
    assert schedule_slot(minute, T + timedelta(seconds=0.2)) == T
    assert schedule_slot(minute, T + timedelta(seconds=59.9)) == T
    assert schedule_slot(minute, T + timedelta(seconds=60)) == T + timedelta(minutes=1)
    quarter = every(timedelta(minutes=15))
    assert schedule_slot(quarter, T + timedelta(minutes=14)) == T
    assert schedule_slot(quarter, T + timedelta(minutes=16)) == T + timedelta(minutes=15)


def test_a_crontab_slot_is_the_latest_time_it_names():
    nightly = crontab(hour=2, minute=0)
    assert schedule_slot(nightly, T + timedelta(seconds=1)) == T
    assert schedule_slot(nightly, T + timedelta(seconds=59)) == T
    assert schedule_slot(nightly, T + timedelta(days=1, seconds=3)) == T + timedelta(days=1)
    # a late send (a beat restarted after 02:00 catches up) is still 02:00's
    assert schedule_slot(nightly, T + timedelta(hours=1, minutes=10)) == T
    hourly = crontab(minute=17)
    assert schedule_slot(hourly, T + timedelta(minutes=17, seconds=5)) == T + timedelta(minutes=17)
    assert schedule_slot(hourly, T + timedelta(minutes=16)) == T - timedelta(minutes=43)
    sundays = crontab(minute=0, hour=5, day_of_week=0)  # T is a Monday
    assert schedule_slot(sundays, T) == T + timedelta(hours=3) - timedelta(days=1)


def test_recovery_runs_every_minute_or_sooner_when_jobs_go_stale_sooner():
    assert recovery_interval(600) == 60
    assert recovery_interval(30) == 15
    assert recovery_interval(1) == 1


@pytest.mark.django_db
def test_a_slot_is_claimed_once():
    assert schedule_claim("nightly pipeline fan-out", T, by="a:1")
    assert not schedule_claim("nightly pipeline fan-out", T, by="b:2")
    assert schedule_claim("nightly pipeline fan-out", T + timedelta(days=1))
    assert schedule_claim("expire organisation exports", T)
    row = ScheduledRun.objects.get(name="nightly pipeline fan-out", slot=T)
    assert row.claimed_by == "a:1"


@pytest.mark.django_db
def test_a_claim_inside_a_transaction_leaves_it_usable():
    from django.db import transaction

    with transaction.atomic():
        assert schedule_claim("x", T)
        assert not schedule_claim("x", T)
        assert ScheduledRun.objects.filter(name="x").count() == 1


@pytest.mark.django_db
def test_old_claims_are_deleted_as_new_ones_are_made():
    schedule_claim("x", T - KEEP_CLAIMS - timedelta(minutes=1))
    schedule_claim("y", T - KEEP_CLAIMS - timedelta(minutes=1))
    schedule_claim("x", T)
    assert set(ScheduledRun.objects.values_list("name", "slot")) == {
        ("x", T),
        ("y", T - KEEP_CLAIMS - timedelta(minutes=1)),
    }


@pytest.mark.django_db(transaction=True)
def test_claims_racing_from_several_connections_give_one_winner():
    """Eight threads, each with its own database connection, claim the same slot at
    once: exactly one wins (the unique constraint, not a read-then-write)."""
    barrier = threading.Barrier(8)
    won: list[bool] = []

    def claim():
        try:
            barrier.wait(timeout=30)
            won.append(schedule_claim("race", T))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == [False] * 7 + [True]
    assert ScheduledRun.objects.filter(name="race").count() == 1


def _scheduler(tmp_path, n: int) -> OnceScheduler:
    return OnceScheduler(app=current_app, schedule_filename=str(tmp_path / f"beat-{n}"), lazy=True)


def _entry(name: str, task: str, schedule, **kwargs) -> ScheduleEntry:
    return ScheduleEntry(name=name, task=task, schedule=schedule, app=current_app, **kwargs)


@pytest.fixture
def sent(monkeypatch):
    """What the schedulers sent (task name, slot header) instead of a broker."""
    sends: list[tuple[str, str]] = []

    def send_task(self, name, args=None, kwargs=None, **options):
        sends.append((name, options.get("headers", {}).get(SLOT_HEADER)))

    monkeypatch.setattr(OnceScheduler, "send_task", send_task)
    return sends


@pytest.fixture
def clock(monkeypatch):
    now = {"t": T}
    monkeypatch.setattr(current_app, "now", lambda: now["t"])
    return now


@pytest.mark.django_db
def test_two_schedulers_send_each_slot_of_an_interval_entry_once(tmp_path, sent, clock):
    a, b = _scheduler(tmp_path, 1), _scheduler(tmp_path, 2)
    entry = _entry("probe every minute", "tests.nope", every(timedelta(seconds=60)))
    # a and b fire 25 seconds apart, as two schedulers started at different times do
    for minute in range(3):
        clock["t"] = T + timedelta(minutes=minute, seconds=1)
        a.apply_entry(entry)
        clock["t"] = T + timedelta(minutes=minute, seconds=26)
        b.apply_entry(entry)
    slots = [(T + timedelta(minutes=m)).isoformat() for m in range(3)]
    assert sent == [("tests.nope", slot) for slot in slots]
    assert ScheduledRun.objects.filter(name="probe every minute").count() == 3


@pytest.mark.django_db
def test_a_restarted_schedulers_catch_up_of_a_run_sent_elsewhere_is_dropped(tmp_path, sent, clock):
    a, b = _scheduler(tmp_path, 1), _scheduler(tmp_path, 2)
    entry = _entry("nightly probe", "tests.nope", crontab(hour=2, minute=0))
    clock["t"] = T + timedelta(seconds=0.5)
    a.apply_entry(entry)
    clock["t"] = T + timedelta(hours=1, minutes=10)  # b restarts and finds 02:00 overdue
    b.apply_entry(entry)
    assert sent == [("tests.nope", T.isoformat())]


@pytest.mark.django_db
def test_one_scheduler_alone_sends_every_slot(tmp_path, sent, clock):
    a = _scheduler(tmp_path, 1)
    entry = _entry("probe", "tests.nope", every(timedelta(seconds=60)))
    for seconds in (59.9, 120.1, 180.2, 240.3):  # a beat that sends a little late each time
        clock["t"] = T + timedelta(seconds=seconds)
        a.apply_entry(entry)
    assert len(sent) == 4


@pytest.mark.django_db
def test_the_nightly_fan_out_queues_each_organisation_once_under_two_schedulers(tmp_path, clock):
    """Two schedulers both send the nightly fan-out at 02:00: each organisation's
    pipeline jobs are created once (the fan-out runs eagerly here; the jobs' own
    tasks wait for a commit that never comes in this test's transaction)."""
    current_app.loader.import_default_modules()
    orgs = [OrganizationFactory() for _ in range(3)]
    a, b = _scheduler(tmp_path, 1), _scheduler(tmp_path, 2)
    entry = _entry(
        "nightly pipeline fan-out", "segmentation.tasks.nightly_fanout", crontab(hour=2, minute=0)
    )
    clock["t"] = T + timedelta(seconds=0.4)
    a.apply_entry(entry)
    clock["t"] = T + timedelta(seconds=2.5)
    b.apply_entry(entry)

    counts = {}
    for org in orgs:
        with tenant_context(org):
            counts[org.pk] = Job.objects.count()
    assert all(n > 0 for n in counts.values()), counts
    with tenant_context(orgs[0]):
        kinds = list(Job.objects.values_list("kind", flat=True))
    assert len(kinds) == len(set(kinds)), kinds  # each step once
    assert all(n == counts[orgs[0].pk] for n in counts.values()), counts

    # the next night is a slot of its own
    clock["t"] = T + timedelta(days=1, seconds=1)
    b.apply_entry(entry)
    with tenant_context(orgs[0]):
        assert Job.objects.count() == 2 * counts[orgs[0].pk]


@pytest.mark.django_db
def test_no_claim_no_send(tmp_path, sent, clock, monkeypatch):
    """With the database unreachable the scheduler sends nothing (sending unclaimed
    could run the work twice); the next slot tries again."""
    import core.scheduling as scheduling

    def broken(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(scheduling, "schedule_claim", broken)
    _scheduler(tmp_path, 1).apply_entry(_entry("probe", "tests.nope", every(60)))
    assert sent == []


def test_every_periodic_task_goes_through_the_claiming_scheduler():
    current_app.loader.import_default_modules()
    assert current_app.conf.beat_scheduler == "core.scheduling:OnceScheduler"
    names = {entry["task"] for entry in current_app.conf.beat_schedule.values()}
    assert {
        "segmentation.tasks.nightly_fanout",
        "campaigns.tasks.send_due",
        "campaigns.tasks.automations_due",
        "campaigns.tasks.conversions_due",
        "customers.tasks.org_exports_expire",
        "accounts.tasks.organizations_delete_due",
        "core.tasks.jobs_recover_stale",
    } <= names
