"""Jobs API (CONTRACT.md: the Job shape, the list shape, cancelling)."""

from __future__ import annotations

from unittest.mock import ANY

import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.jobs import job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id",
    "kind",
    "status",
    "progress",
    "message",
    "result",
    "created_at",
    "started_at",
    "finished_at",
}


def test_job_has_the_contract_shape(api, in_org):
    job = job_start(
        organization=in_org,
        kind="demo",
        task=demo_countdown,
        params={"steps": 2, "delay": 0},
        sync=True,
    )
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert JOB_FIELDS <= set(body)
    assert body["id"] == job.pk
    assert body["kind"] == "demo"
    assert body["status"] == "succeeded"
    assert body["progress"] == 100
    assert body["message"] == "Counted 2 steps."
    assert body["result"] == {"steps": 2}
    for field in ("created_at", "started_at", "finished_at"):
        assert timezone.datetime.fromisoformat(body[field].replace("Z", "+00:00"))


def test_queued_job_has_nulls_not_missing_fields(api, org):
    with tenant_context(org):
        job = Job.objects.create(kind="import")
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["started_at"] is None
    assert body["finished_at"] is None


def test_list_is_paginated_and_filterable(api, org):
    with tenant_context(org):
        Job.objects.create(kind="import", status=JobStatus.FAILED)
        Job.objects.create(kind="segments", status=JobStatus.SUCCEEDED)
    body = api.get("/api/v1/jobs/").json()
    assert {"next", "previous", "results"} <= set(body)
    assert body["count"] == 2
    assert [j["kind"] for j in api.get("/api/v1/jobs/?kind=import").json()["results"]] == ["import"]
    failed = api.get("/api/v1/jobs/?status=failed").json()["results"]
    assert [j["status"] for j in failed] == ["failed"]
    assert len(api.get("/api/v1/jobs/?page_size=1").json()["results"]) == 1


def test_cancel_queued_job(api, org):
    with tenant_context(org):
        job = Job.objects.create(kind="import")
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.finished_at is not None


def test_cancel_running_job_asks_it_to_stop(api, org):
    with tenant_context(org):
        job = Job.objects.create(kind="import", status=JobStatus.RUNNING)
    body = api.post(f"/api/v1/jobs/{job.pk}/cancel/").json()
    assert body["status"] == "running"
    assert body["message"] == "Cancelling…"
    job.refresh_from_db()
    assert job.cancel_requested


def test_cancel_finished_job_is_a_clear_400(api, org):
    with tenant_context(org):
        job = Job.objects.create(kind="import", status=JobStatus.SUCCEEDED)
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid", "message": "This job has already finished.", "fields": {}}
    }


def test_jobs_are_read_only_through_the_api(api, org):
    with tenant_context(org):
        job = Job.objects.create(kind="import")
    assert api.delete(f"/api/v1/jobs/{job.pk}/").status_code == 405
    assert api.patch(f"/api/v1/jobs/{job.pk}/", {"status": "succeeded"}).status_code == 405
    assert api.post("/api/v1/jobs/", {"kind": "x"}).status_code == 405
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_a_nul_character_in_a_query_parameter_is_a_400_naming_it(api, owner_client):
    # PostgreSQL refuses NUL even in a filter: this was a 500 there (found by the schema fuzz).
    r = api.get("/api/v1/products/", {"sku": "a\x00b"})
    assert r.status_code == 400
    assert r.json()["error"]["fields"] == {"sku": ANY}
    page = owner_client.get("/customers/", {"search": "a\x00b"})
    assert page.status_code == 400
    assert "search" in page.content.decode()
