"""Heavy jobs (pipeline steps, exports): at most `limits_for(org).heavy_jobs` of an
organisation run at a time; the next one waits in the queue, light jobs do not."""

from __future__ import annotations

import datetime as dt

import pytest
from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from accounts.models import OrganizationLimits
from accounts.tenancy import tenant_context
from core import jobs as core_jobs
from core.jobs import JobKind, TenantTask, heavy_kinds, job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown

pytestmark = pytest.mark.django_db

WAITING_ONE = "Waiting: your plan runs 1 heavy job at a time."


@shared_task(base=TenantTask, bind=True, name="core.tests.heavy_work")
def heavy_work(self, *, organization_id, job_id):
    return {"message": "Heavy work done."}


@pytest.fixture
def heavy_kind(monkeypatch):
    kind = JobKind(name="test_heavy", task_name=heavy_work.name, role="marketer", heavy=True)
    monkeypatch.setitem(core_jobs._KINDS, "test_heavy", kind)
    return kind


def _limit(org, n):
    OrganizationLimits.objects.update_or_create(organization=org, defaults={"heavy_jobs": n})


def _running(org, kind="segments", *, beat=None) -> Job:
    beat = beat or timezone.now()
    with tenant_context(org):
        return Job.objects.create(
            kind=kind, status=JobStatus.RUNNING, started_at=beat, heartbeat_at=beat
        )


def test_pipeline_steps_and_the_export_are_heavy_and_imports_are_not():
    heavy = heavy_kinds()
    assert {"segments", "predictions", "org_export"} <= set(heavy)
    assert "import" not in heavy and "demo" not in heavy and "erasure" not in heavy


def test_limit_one_makes_the_second_heavy_job_wait_while_a_light_job_runs(
    org, heavy_kind, monkeypatch
):
    _limit(org, 1)
    first = _running(org)
    seen = []

    def meanwhile(seconds):
        job = Job.all_objects.get(kind="test_heavy")
        seen.append((job.status, job.message))
        # a light job is not held back by the heavy one running
        with tenant_context(org):
            light = job_start(
                organization=org,
                kind="demo",
                task=demo_countdown,
                params={"steps": 1, "delay": 0},
                sync=True,
            )
        seen.append(("light", light.status))
        Job.all_objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED)

    monkeypatch.setattr(core_jobs, "_sleep", meanwhile)
    with tenant_context(org):
        job = job_start(organization=org, kind="test_heavy", task=heavy_work, sync=True)
    assert seen == [(JobStatus.QUEUED, WAITING_ONE), ("light", JobStatus.SUCCEEDED)]
    assert job.status == JobStatus.SUCCEEDED and job.message == "Heavy work done."
    assert job.attempts == 1


def test_within_the_limit_heavy_jobs_start_at_once(org, heavy_kind, monkeypatch):
    _limit(org, 2)
    _running(org)

    def never(seconds):
        raise AssertionError("a second heavy job under a limit of 2 should not wait")

    monkeypatch.setattr(core_jobs, "_sleep", never)
    with tenant_context(org):
        job = job_start(organization=org, kind="test_heavy", task=heavy_work, sync=True)
    assert job.status == JobStatus.SUCCEEDED


def test_other_organisations_and_stale_jobs_do_not_count(org, other_org, heavy_kind, monkeypatch):
    _limit(org, 1)
    _running(other_org)
    stale = timezone.now() - dt.timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 60)
    _running(org, beat=stale)

    def never(seconds):
        raise AssertionError("nothing alive of this organisation holds the slot")

    monkeypatch.setattr(core_jobs, "_sleep", never)
    with tenant_context(org):
        job = job_start(organization=org, kind="test_heavy", task=heavy_work, sync=True)
    assert job.status == JobStatus.SUCCEEDED


def test_the_platform_default_applies_without_own_limits(org, heavy_kind, monkeypatch, settings):
    settings.ORG_MAX_HEAVY_JOBS = 1
    _running(org, kind="org_export")
    waited = []

    def free_after_first_wait(seconds):
        waited.append(seconds)
        Job.all_objects.filter(kind="org_export").update(status=JobStatus.SUCCEEDED)

    monkeypatch.setattr(core_jobs, "_sleep", free_after_first_wait)
    with tenant_context(org):
        job = job_start(organization=org, kind="test_heavy", task=heavy_work, sync=True)
    assert waited and job.status == JobStatus.SUCCEEDED


def test_in_a_worker_the_waiting_job_is_retried_with_its_heavy_waits_counted(
    org, heavy_kind, monkeypatch, settings
):
    """In a worker the job is not taken: it stays queued and comes back after
    JOB_WAIT_RETRY_SECONDS, counting its heavy waits apart from JobMustWait's."""
    settings.JOB_WAIT_RETRY_SECONDS = 30
    settings.JOB_WAIT_MAX_SECONDS = 60  # two import waits; far fewer than the heavy waits
    _limit(org, 1)
    _running(org)
    with tenant_context(org):
        job = Job.objects.create(kind="test_heavy", params={"_task": heavy_work.name})
    retried = {}

    def fake_retry(*, countdown, max_retries, kwargs):
        retried.update(countdown=countdown, max_retries=max_retries, kwargs=kwargs)
        return Retry()

    monkeypatch.setattr(heavy_work, "retry", fake_retry)
    call = {"organization_id": org.pk, "job_id": job.pk, "_heavy_waits": 40}
    heavy_work.push_request(is_eager=False, retries=40, kwargs=call, id="t-1")
    try:
        with pytest.raises(Retry):
            heavy_work(**call)
    finally:
        heavy_work.pop_request()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.message == WAITING_ONE
    assert job.attempts == 0 and job.started_at is None
    assert retried["countdown"] == 30 and retried["max_retries"] == 41
    assert retried["kwargs"] == {**call, "_heavy_waits": 41}


def test_a_heavy_job_of_a_suspended_organisation_is_paused_not_counted(
    org, heavy_kind, monkeypatch
):
    from accounts.models import Organization

    Organization.objects.filter(pk=org.pk).update(status="suspended")
    with tenant_context(org):
        job = job_start(organization=org, kind="test_heavy", task=heavy_work, sync=True)
    assert job.status == JobStatus.QUEUED
    assert job.message == "Paused while Acme Gifts is suspended."
    assert core_jobs._heavy_running(org.pk) == 0


@shared_task(base=TenantTask, bind=True, name="core.tests.waits_for_import")
def waits_for_import(self, *, organization_id, job_id):
    raise core_jobs.JobMustWait("Waiting for the import of a.csv to finish.", ready=lambda: False)


@pytest.mark.parametrize(("heavy_waits", "gives_up"), [(40, False), (0, True)])
def test_waits_for_a_heavy_slot_do_not_use_up_an_import_wait(
    org, monkeypatch, settings, heavy_waits, gives_up
):
    settings.JOB_WAIT_RETRY_SECONDS = 30
    settings.JOB_WAIT_MAX_SECONDS = 60
    with tenant_context(org):
        job = Job.objects.create(kind="import", params={"_task": waits_for_import.name})
    monkeypatch.setattr(waits_for_import, "retry", lambda **kwargs: Retry())
    call = {"organization_id": org.pk, "job_id": job.pk, "_heavy_waits": heavy_waits}
    waits_for_import.push_request(is_eager=False, retries=40, kwargs=call, id="t-2")
    try:
        if gives_up:
            waits_for_import(**call)
        else:
            with pytest.raises(Retry):
                waits_for_import(**call)
    finally:
        waits_for_import.pop_request()
    job.refresh_from_db()
    if gives_up:
        assert job.status == JobStatus.FAILED and "took too long" in job.message
    else:
        assert job.status == JobStatus.QUEUED
