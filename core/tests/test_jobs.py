"""Jobs: the Job row written by TenantTask, failures, cancelling, retries, limits."""

import pytest
from celery import current_app, shared_task
from django.conf import settings
from django.db import OperationalError

from core.exceptions import ApplicationError
from core.jobs import TRANSIENT_ERRORS, TenantTask, job_cancel, job_rerun, job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown


@pytest.mark.django_db
def test_job_runs_and_reports_success(in_org):
    job = job_start(
        organization=in_org,
        kind="demo",
        task=demo_countdown,
        params={"steps": 3, "delay": 0},
        sync=True,
    )
    assert job.status == JobStatus.SUCCEEDED
    assert job.progress == 100
    assert job.result["steps"] == 3
    assert job.message == "Counted 3 steps."


@pytest.mark.django_db
def test_cancelled_before_start_never_runs(in_org):
    job = Job.objects.create(kind="demo", params={"_task": demo_countdown.name})
    job_cancel(job=job)
    demo_countdown.apply(
        kwargs={"organization_id": in_org.pk, "job_id": job.pk, "steps": 3, "delay": 0}
    )
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.started_at is None


# --- Failures, retries and limits ---------------------------------------------------------------


@shared_task(base=TenantTask, bind=True, name="core.tests.fail_with_reason")
def fail_with_reason(self, *, organization_id, job_id):
    self.job.progress(40, "Reading the file")
    raise ApplicationError("Row 3: the date '31/02/2024' does not exist.", {"row": 3})


@shared_task(base=TenantTask, bind=True, name="core.tests.fail_unexpectedly")
def fail_unexpectedly(self, *, organization_id, job_id):
    raise ValueError("internal detail: /srv/segmenta/secret.py line 12")


@shared_task(base=TenantTask, bind=True, name="core.tests.wait_for_cancel")
def wait_for_cancel(self, *, organization_id, job_id):
    Job.all_objects.filter(pk=job_id).update(cancel_requested=True)  # someone clicks Cancel
    self.job.progress(50, "Halfway", force=True)
    raise AssertionError("the job should have stopped at the progress check")


@shared_task(base=TenantTask, bind=True, name="core.tests.current_org")
def current_org(self, *, organization_id, job_id):
    from accounts.tenancy import current_organization_id

    return {"seen": current_organization_id(), "jobs": Job.objects.count()}


@pytest.mark.django_db
def test_application_error_fails_the_job_with_a_readable_reason(in_org):
    job = job_start(organization=in_org, kind="import", task=fail_with_reason, sync=True)
    assert job.status == JobStatus.FAILED
    assert job.message == "Row 3: the date '31/02/2024' does not exist."
    # the step it failed at (its last progress report) is kept for the integrator
    assert job.result == {"error": job.message, "row": 3, "failed_step": "Reading the file"}
    assert job.attempts == 1
    assert job.finished_at is not None


@pytest.mark.django_db
def test_unexpected_error_gives_a_generic_message_with_a_reference(in_org, caplog):
    job = job_start(organization=in_org, kind="import", task=fail_unexpectedly, sync=True)
    assert job.status == JobStatus.FAILED
    assert f"reference: job {job.pk}" in job.message
    for leak in ("Traceback", "ValueError", "secret.py", "internal detail"):
        assert leak not in job.message
        assert leak not in str(job.result)
    assert job.attempts == 1  # not retried
    # The details go to the log for the operators.
    assert any("job.failed" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_cancel_flag_stops_a_running_job_between_chunks(in_org):
    job = job_start(organization=in_org, kind="demo", task=wait_for_cancel, sync=True)
    assert job.status == JobStatus.CANCELLED
    assert job.message == "Cancelled."


@pytest.mark.django_db
def test_task_runs_in_its_organisation(in_org, other_org):
    from accounts.tenancy import tenant_context

    with tenant_context(other_org):
        Job.objects.create(kind="other")
    job = job_start(organization=in_org, kind="demo", task=current_org, sync=True)
    assert job.result == {"seen": in_org.pk, "jobs": 1}


@pytest.mark.django_db
def test_repeated_delivery_of_a_finished_job_is_harmless(in_org):
    job = job_start(
        organization=in_org, kind="demo", task=demo_countdown, params={"steps": 1, "delay": 0},
        sync=True,
    )  # fmt: skip
    finished_at = job.finished_at
    demo_countdown.apply(kwargs={"organization_id": in_org.pk, "job_id": job.pk, "steps": 1})
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at) == (JobStatus.SUCCEEDED, 1, finished_at)


@pytest.mark.django_db
def test_cancel_running_job_sets_the_flag_and_finished_job_refuses(in_org):
    job = Job.objects.create(kind="demo", status=JobStatus.RUNNING)
    job_cancel(job=job)
    assert job.cancel_requested
    assert job.status == JobStatus.RUNNING  # it stops at its next check
    job.status = JobStatus.SUCCEEDED
    job.save()
    with pytest.raises(ApplicationError, match="already finished"):
        job_cancel(job=job)


@pytest.mark.django_db
def test_failed_job_can_be_run_again(in_org):
    job = job_start(organization=in_org, kind="import", task=fail_with_reason, sync=True)
    current_app.conf.task_always_eager = False  # only queue it
    try:
        again = job_rerun(job=job)
    finally:
        current_app.conf.task_always_eager = True
    assert again.pk != job.pk
    assert again.params["_task"] == fail_with_reason.name


def test_only_transient_errors_are_retried():
    for task in (TenantTask, demo_countdown):
        assert OperationalError in task.autoretry_for
        assert not any(issubclass(ValueError, e) for e in task.autoretry_for)
        assert not any(issubclass(ApplicationError, e) for e in task.autoretry_for)
    assert TRANSIENT_ERRORS == TenantTask.autoretry_for
    assert TenantTask.retry_backoff and TenantTask.max_retries


def test_time_limits_are_set():
    soft, hard = settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT
    assert 0 < soft < hard
    assert current_app.conf.task_soft_time_limit == soft
    assert current_app.conf.task_time_limit == hard
    if settings.REDIS_URL:
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > hard
