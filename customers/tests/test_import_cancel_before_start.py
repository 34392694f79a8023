"""An import whose job was cancelled before it ran (while queued, or found cancelled
when a worker picked it up) does not stay "queued" or "running" for ever: it is
cancelled, says what was kept, and can be run again."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tenancy import tenant_context
from core.jobs import _send, job_cancel, job_rerun
from core.models import Job, JobStatus
from customers.models import Import, ImportStatus, Order
from customers.services import import_create, import_start

from .factories import DATA

pytestmark = pytest.mark.django_db

NOTHING_IMPORTED = (
    "Cancelled before it started: nothing was imported. Run it again when you are ready."
)


def _upload():
    return SimpleUploadedFile("o.csv", (DATA / "orders_bom_tab.tsv").read_bytes())


def test_cancelling_a_queued_import_cancels_it_and_it_can_run_again(
    api, org, owner, django_capture_on_commit_callbacks
):
    answer = api.post("/api/v1/imports/", {"file": _upload(), "kind": "orders"}, format="multipart")
    assert answer.status_code == 202, answer.content
    job_id, import_id = answer.json()["job"], answer.json()["import"]
    assert api.get(f"/api/v1/imports/{import_id}/").json()["status"] == "queued"

    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    report = api.get(f"/api/v1/imports/{import_id}/").json()
    assert (report["status"], report["message"]) == ("cancelled", NOTHING_IMPORTED)
    assert report["finished_at"]

    # the queued message still reaches a worker: the job is finished, nothing is imported
    with django_capture_on_commit_callbacks(execute=True):
        _send(Job.all_objects.get(pk=job_id))
    with tenant_context(org):
        assert not Order.objects.exists()
        # "Run the import again" on its page
        with django_capture_on_commit_callbacks(execute=True):
            job_rerun(job=Job.objects.get(pk=job_id), user=owner)
    report = api.get(f"/api/v1/imports/{import_id}/").json()
    assert (report["status"], report["rows"]) == ("succeeded", 3)


@pytest.mark.parametrize(
    ("left_as", "message"),
    [
        (ImportStatus.QUEUED, NOTHING_IMPORTED),
        (
            # its worker stopped mid-file and the job was queued again
            ImportStatus.RUNNING,
            "Cancelled. What was imported is kept; run it again to finish (rows already "
            "imported are left unchanged).",
        ),
    ],
)
def test_an_import_found_cancelled_when_a_worker_picks_it_up_is_cancelled(
    in_org, owner, left_as, message
):
    imp = import_create(organization=in_org, kind="orders", uploaded_file=_upload(), user=owner)
    job = import_start(imp=imp, user=owner)  # queued
    Import.objects.filter(pk=imp.pk).update(status=left_as)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    _send(job)
    job.refresh_from_db()
    assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
    imp.refresh_from_db()
    assert (imp.status, imp.message) == (ImportStatus.CANCELLED, message)
    assert imp.finished_at is not None
    assert not Order.objects.exists()


def test_an_import_a_newer_job_took_over_is_left_alone(in_org, owner):
    imp = import_create(organization=in_org, kind="orders", uploaded_file=_upload(), user=owner)
    old = import_start(imp=imp, user=owner)  # queued
    newer = Job.objects.create(kind="import", status=JobStatus.RUNNING)
    Import.objects.filter(pk=imp.pk).update(job=newer, status=ImportStatus.RUNNING)
    job_cancel(job=old)
    imp.refresh_from_db()
    assert (imp.status, imp.job_id) == (ImportStatus.RUNNING, newer.pk)
