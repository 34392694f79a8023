"""A kind's `on_cancelled` hook: called once a job ends cancelled before its body
finished (cancelled while queued, found cancelled when a worker picks it up, stopped
at a cancel check), as the job's organisation, never for a job that ran to its end;
a failing hook is logged and the cancel stands."""

from __future__ import annotations

import pytest
from celery import shared_task

from accounts.tenancy import current_organization_id
from core import jobs
from core.jobs import JobKind, TenantTask, job_cancel, job_start
from core.models import Job, JobStatus
from customers.models import Customer

KIND = "hooked"


@shared_task(base=TenantTask, bind=True, name="core.tests.hooked_task")
def hooked_task(self, *, organization_id, job_id, cancel_meanwhile: bool = False):
    if cancel_meanwhile:
        Job.all_objects.filter(pk=job_id).update(cancel_requested=True)  # someone clicks Cancel
        self.job.progress(50, "Halfway", force=True)
    return {"message": "Done."}


@pytest.fixture
def calls(monkeypatch):
    """Register the kind with a hook that records (job id, status, organisation)."""
    seen: list[tuple[int, str, int | None]] = []

    def hook(job: Job) -> None:
        seen.append((job.pk, job.status, current_organization_id()))

    kind = JobKind(name=KIND, task_name=hooked_task.name, role="marketer", on_cancelled=hook)
    monkeypatch.setitem(jobs._KINDS, KIND, kind)
    return seen


def _queued(org, **params) -> Job:
    return job_start(organization=org, kind=KIND, task=hooked_task, params=params)


def _deliver(job: Job) -> None:
    """A worker picks up the job."""
    params = {k: v for k, v in job.params.items() if not k.startswith("_")}
    hooked_task.apply(kwargs={"organization_id": job.organization_id, "job_id": job.pk, **params})
    job.refresh_from_db()


def test_cancelling_a_queued_job_calls_the_hook_once_as_its_organisation(in_org, calls):
    job = _queued(in_org)
    job_cancel(job=job)
    assert job.status == JobStatus.CANCELLED
    assert calls == [(job.pk, JobStatus.CANCELLED, in_org.pk)]
    _deliver(job)  # the queued message still arrives: a finished job is skipped
    assert len(calls) == 1


def test_a_job_found_cancelled_when_a_worker_picks_it_up_calls_the_hook(in_org, calls):
    job = _queued(in_org)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    _deliver(job)
    assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
    assert calls == [(job.pk, JobStatus.CANCELLED, in_org.pk)]


def test_a_job_stopped_at_a_cancel_check_calls_the_hook(in_org, calls):
    job = _queued(in_org, cancel_meanwhile=True)
    _deliver(job)
    assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled.")
    assert calls == [(job.pk, JobStatus.CANCELLED, in_org.pk)]


def test_a_job_that_runs_to_its_end_does_not_call_the_hook(in_org, calls):
    job = _queued(in_org)
    _deliver(job)
    assert job.status == JobStatus.SUCCEEDED
    assert calls == []


def test_a_job_a_worker_took_meanwhile_is_only_asked_to_stop(in_org, calls):
    job = _queued(in_org)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)  # taken after it was read
    job_cancel(job=job)  # `job` still says queued
    assert (job.status, job.cancel_requested, job.message) == (
        JobStatus.RUNNING,
        True,
        "Cancelling…",
    )
    assert calls == []


def test_a_failing_hook_is_logged_rolled_back_and_the_cancel_stands(in_org, monkeypatch, caplog):
    def broken(job: Job) -> None:
        Customer.objects.create(organization_id=job.organization_id, external_id="half-written")
        raise RuntimeError("the hook broke")

    kind = JobKind(name=KIND, task_name=hooked_task.name, role="marketer", on_cancelled=broken)
    monkeypatch.setitem(jobs._KINDS, KIND, kind)
    job = _queued(in_org)
    job_cancel(job=job)
    assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled.")
    assert not Customer.objects.filter(external_id="half-written").exists()
    assert any("job.on_cancelled_failed" in r.getMessage() for r in caplog.records)

    second = _queued(in_org)
    Job.objects.filter(pk=second.pk).update(cancel_requested=True)
    _deliver(second)
    assert (second.status, second.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
