"""The deprecated waiting `POST audiences/preview/` (no `Prefer: respond-async`) reads
its job's row less often the longer it waits: after 0.1 s, then twice as long each
time up to once a second, so a preview that outlasts the 30 s wait costs 33 reads of
its row, not 150. Timed on a fake clock: nothing sleeps."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tenancy import tenant_context
from audiences.api import _wait_for
from audiences.services import PREVIEW_JOB_KIND
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db


class FakeClock:
    """`time.monotonic` and `time.sleep` of a clock that moves only when slept on;
    `at` runs `(when, action)` once the clock reaches `when`."""

    def __init__(self, at=None):
        self.now = 1000.0
        self.naps: list[float] = []
        self.at = at

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(round(seconds, 6))
        self.now += seconds
        if self.at and self.now - 1000.0 >= self.at[0] - 1e-9:
            self.at[1]()
            self.at = None


@pytest.fixture
def preview_job(org):
    with tenant_context(org):
        return Job.objects.create(
            organization=org, kind=PREVIEW_JOB_KIND, title="Audience preview", params={}
        )


def _job_reads(queries) -> int:
    return sum(
        q["sql"].startswith("SELECT") and Job._meta.db_table in q["sql"]
        for q in queries.captured_queries
    )


def _wait(org, job, seconds, clock, monkeypatch):
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    with tenant_context(org), CaptureQueriesContext(connection) as queries:
        waited = _wait_for(job, seconds)
    monkeypatch.undo()
    return waited, _job_reads(queries)


def test_a_preview_that_outlasts_the_wait_costs_a_read_a_second(org, preview_job, monkeypatch):
    clock = FakeClock()
    waited, reads = _wait(org, preview_job, 30, clock, monkeypatch)
    assert waited.status == JobStatus.QUEUED
    assert clock.naps[:5] == [0.1, 0.2, 0.4, 0.8, 1.0] and max(clock.naps) == 1.0
    assert sum(clock.naps) == pytest.approx(30)  # the last nap ends at the deadline
    assert reads == len(clock.naps) == 33  # was 150 at a read every 0.2 s


def test_a_finished_preview_is_answered_at_the_next_read(org, preview_job, monkeypatch):
    def finish():
        Job.all_objects.filter(pk=preview_job.pk).update(status=JobStatus.SUCCEEDED)

    clock = FakeClock(at=(2.5, finish))  # finishes 2.5 s into the wait
    waited, reads = _wait(org, preview_job, 30, clock, monkeypatch)
    assert waited.status == JobStatus.SUCCEEDED
    assert clock.naps == [0.1, 0.2, 0.4, 0.8, 1.0] and reads == 5  # read at 2.5 s


def test_no_wait_reads_nothing(org, preview_job, monkeypatch):
    clock = FakeClock()
    waited, reads = _wait(org, preview_job, 0, clock, monkeypatch)
    assert waited.status == JobStatus.QUEUED and reads == 0 and clock.naps == []
