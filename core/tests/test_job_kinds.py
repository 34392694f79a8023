"""Job kinds (issue 8, items 11 and 3): re-running a job checks the same role as
starting it and is audited; privacy clean-up jobs cannot be cancelled by users."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLogEntry, Role
from accounts.tenancy import tenant_context
from core.jobs import job_kind, job_kinds
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def _job(org, kind, *, status=JobStatus.FAILED, created_by=None, params=None):
    with tenant_context(org):
        return Job.objects.create(
            kind=kind,
            title=kind,
            status=status,
            created_by=created_by,
            params={**(params or {}), "_task": job_kind(kind).task_name},
        )


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_marketer_cannot_rerun_the_owners_organisation_export(client, org, owner, marketer):
    export = _job(org, "org_export", created_by=owner, params={"user_id": owner.pk})
    client.force_login(marketer)

    response = client.post(reverse("core:job_rerun", args=[export.pk]), follow=True)

    assert "owner" in _messages(response).lower()
    with tenant_context(org):
        assert Job.objects.filter(kind="org_export").count() == 1  # nothing started
        assert not AuditLogEntry.objects.filter(action="job_rerun").exists()


def test_owner_rerun_is_audited(client, org, owner):
    export = _job(org, "org_export", created_by=owner, params={"user_id": owner.pk})
    client.force_login(owner)

    client.post(reverse("core:job_rerun", args=[export.pk]))

    with tenant_context(org):
        again = Job.objects.filter(kind="org_export").exclude(pk=export.pk).get()
        entry = AuditLogEntry.objects.get(action="job_rerun")
    assert again.created_by == owner
    assert entry.actor == owner
    assert entry.details["kind"] == "org_export"
    assert entry.details["job"] == again.pk and entry.details["rerun_of"] == export.pk


@pytest.mark.parametrize("kind", sorted(job_kinds()))
def test_every_kind_reruns_only_for_the_role_that_may_start_it(client, org, make_member, kind):
    spec = job_kind(kind)
    ranks = [Role.VIEWER, Role.MARKETER, Role.ADMIN, Role.OWNER]
    below = ranks[ranks.index(spec.role) - 1] if spec.role != Role.VIEWER else None
    job = _job(org, kind)
    if below is not None:
        client.force_login(make_member(org, below))
        client.post(reverse("core:job_rerun", args=[job.pk]))
        with tenant_context(org):
            assert Job.objects.filter(kind=kind).count() == 1, f"{below} re-ran {kind}"


def test_privacy_clean_up_job_cannot_be_cancelled_through_the_api(api, org):
    job = _job(org, "erasure", status=JobStatus.QUEUED, params={"customer_id": 1})

    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_cancellable"
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and not job.cancel_requested


def test_privacy_clean_up_job_cannot_be_cancelled_on_the_site(client, org, owner):
    job = _job(org, "erasure", status=JobStatus.RUNNING, params={"customer_id": 1})
    client.force_login(owner)

    page = client.get(reverse("core:job_detail", args=[job.pk]))
    assert reverse("core:job_cancel", args=[job.pk]) not in page.content.decode()
    response = client.post(reverse("core:job_cancel", args=[job.pk]), follow=True)

    assert "cannot be cancelled" in _messages(response)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and not job.cancel_requested
