"""Jobs whose worker died are recovered automatically (issue 8, item 19): requeued
while attempts remain, failed with a readable message after that; a repeated
delivery never runs a job twice at the same time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.jobs import jobs_recover_stale
from core.models import Job, JobStatus
from core.tasks import demo_countdown

pytestmark = pytest.mark.django_db


def _running(org, *, minutes_silent: float, attempts: int = 1) -> Job:
    seen = timezone.now() - timedelta(minutes=minutes_silent)
    with tenant_context(org):
        return Job.objects.create(
            kind="demo",
            title="Demo job",
            status=JobStatus.RUNNING,
            attempts=attempts,
            started_at=seen,
            heartbeat_at=seen,
            params={"steps": 2, "delay": 0, "_task": demo_countdown.name},
        )


def test_a_job_whose_worker_died_is_run_again_to_the_end(org):
    job = _running(org, minutes_silent=settings.JOB_STALE_AFTER_SECONDS / 60 + 5)

    outcome = jobs_recover_stale()

    assert outcome["requeued"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED  # the eager test broker ran it again at once
    assert job.message == "Counted 2 steps."
    assert job.attempts == 2


def test_a_job_that_keeps_losing_its_worker_fails_with_a_reason(org):
    job = _running(
        org,
        minutes_silent=settings.JOB_STALE_AFTER_SECONDS / 60 + 5,
        attempts=settings.JOB_MAX_ATTEMPTS,
    )

    outcome = jobs_recover_stale()

    assert outcome["failed"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "worker stopped" in job.message and "run it again" in job.message


def test_a_job_that_reported_recently_is_left_alone(org):
    job = _running(org, minutes_silent=1)

    assert jobs_recover_stale() == {"requeued": 0, "failed": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_a_repeated_delivery_of_a_job_running_elsewhere_does_nothing(org):
    job = _running(org, minutes_silent=0)

    # delivered by a worker (not the eager test mode): the task called as a worker does
    demo_countdown(organization_id=org.pk, job_id=job.pk, steps=1)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)


def test_recovery_is_scheduled_and_runs_when_a_worker_starts():
    current_app.loader.import_default_modules()
    schedule = {entry["task"] for entry in current_app.conf.beat_schedule.values()}
    assert "core.tasks.jobs_recover_stale" in schedule
    from celery.signals import worker_ready

    receivers = [r[1]() for r in worker_ready.receivers]
    assert any(getattr(r, "__name__", "") == "_worker_ready" for r in receivers)
