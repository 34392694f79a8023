import pytest

from core.jobs import job_cancel, job_start
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
