"""The jobs an API call starts are named in its answer; a failed job says why and
at which step (issue 16, item 11)."""

from __future__ import annotations

from celery import shared_task

from accounts.tenancy import tenant_context
from core.jobs import TenantTask, job_start
from core.models import Job, JobStatus


@shared_task(base=TenantTask, bind=True, name="core.tests.fail_midway")
def fail_midway(self, *, organization_id, job_id):
    self.job.progress(20, "Reading orders", force=True)
    self.job.progress(60, "Fitting the model", force=True)
    raise ValueError("internal detail: /srv/segmenta/secret.py line 12")


def test_bulk_write_names_the_refresh_it_started(api, org):
    answer = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "A1", "email": "a1@example.com"}],
        format="json",
    )
    assert answer.status_code == 200, answer.content
    jobs = answer.json()["jobs"]
    assert {j["kind"] for j in jobs} == {
        "segments",
        "predictions",
        "recommendations",
        "audiences",
        "offers",
        "loyalty",
        "research",
    }
    with tenant_context(org):
        for j in jobs:
            assert Job.objects.get(pk=j["id"]).kind == j["kind"]
    for j in jobs:
        assert api.get(f"/api/v1/jobs/{j['id']}/").status_code == 200

    # a second write while those wait names the same jobs: they will read it too
    again = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "A2", "email": "a2@example.com"}],
        format="json",
    )
    assert sorted(j["id"] for j in again.json()["jobs"]) == sorted(j["id"] for j in jobs)
    # nothing changed: nothing started
    same = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "A2", "email": "a2@example.com"}],
        format="json",
    )
    assert same.json()["jobs"] == []


def test_failed_job_says_why_and_at_which_step(api, org):
    with tenant_context(org):
        job = job_start(organization=org, kind="import", task=fail_midway, sync=True)
    assert job.status == JobStatus.FAILED
    assert "stopped at “Fitting the model”" in job.message
    assert f"reference: job {job.pk}" in job.message
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["failure"]["step"] == "Fitting the model"
    assert "went wrong on our side" in body["failure"]["reason"]
    for leak in ("ValueError", "secret.py", "internal detail"):
        assert leak not in str(body)


def test_succeeded_job_has_no_failure(api, org):
    with tenant_context(org):
        job = Job.objects.create(organization=org, kind="import", status=JobStatus.SUCCEEDED)
    assert api.get(f"/api/v1/jobs/{job.pk}/").json()["failure"] is None
