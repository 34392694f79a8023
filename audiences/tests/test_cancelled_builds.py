"""A build cancelled before it finished (while queued, when a worker picks it up, or
at a cancel check) does not leave the audience "building" for ever: it fails with a
plain reason, keeps the members of its last build, and can be rebuilt."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from audiences.models import Audience, AudienceMember, AudienceStatus
from audiences.services import audience_create, audience_rebuild
from audiences.tasks import audience_build
from audiences.tests.helpers import segments_world
from core.jobs import JobCancelled, job_cancel
from core.models import Job, JobStatus

NEVER_BUILT = "The build was cancelled before it finished. Rebuild it to find its customers."
BUILT_BEFORE = (
    "The build was cancelled before it finished. It still holds the customers of its "
    "last build; rebuild it to bring it up to date."
)


@pytest.fixture
def world(org):
    return segments_world(org)


def _definition(world):
    return {"kind": "segments", "include": [world["a"].pk]}


def _run(audience) -> None:
    """A worker picks up the audience's queued build job."""
    audience_build.apply(
        kwargs={
            "organization_id": audience.organization_id,
            "job_id": audience.job_id,
            "audience_id": audience.pk,
        }
    )


def test_cancelling_a_queued_build_fails_the_audience(
    api, world, django_capture_on_commit_callbacks
):
    answer = api.post(
        "/api/v1/audiences/", {"name": "Loyal", "definition": _definition(world)}, format="json"
    )
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["status"] == "building"

    cancelled = api.post(f"/api/v1/jobs/{created['job']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    one = api.get(f"/api/v1/audiences/{created['id']}/").json()
    assert (one["status"], one["message"], one["size"]) == ("failed", NEVER_BUILT, 0)

    with django_capture_on_commit_callbacks(execute=True):
        rebuilt = api.post(f"/api/v1/audiences/{created['id']}/rebuild/")
    assert rebuilt.status_code == 202, rebuilt.content
    one = api.get(f"/api/v1/audiences/{created['id']}/").json()
    assert (one["status"], one["message"], one["size"]) == ("ready", "", 20)


def test_a_cancelled_rebuild_keeps_the_last_members_and_says_so(org, owner, world):
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Loyal", definition=_definition(world), user=owner, sync=True
        )
        assert audience.status == AudienceStatus.READY
        job = audience_rebuild(organization=org, audience=audience, user=owner)  # queued
        audience.refresh_from_db()
        assert audience.status == AudienceStatus.BUILDING
        job_cancel(job=job)
        audience.refresh_from_db()
        assert (audience.status, audience.message) == (AudienceStatus.FAILED, BUILT_BEFORE)
        assert AudienceMember.objects.filter(audience=audience).count() == 20


def test_a_build_found_cancelled_when_a_worker_picks_it_up_fails_the_audience(org, owner, world):
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Loyal", definition=_definition(world), user=owner
        )
        Job.objects.filter(pk=audience.job_id).update(cancel_requested=True)
        _run(audience)
        job = Job.objects.get(pk=audience.job_id)
        assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
        audience.refresh_from_db()
        assert (audience.status, audience.message) == (AudienceStatus.FAILED, NEVER_BUILT)


def test_a_build_stopped_at_a_cancel_check_fails_the_audience(org, owner, world, monkeypatch):
    def cancelled_meanwhile(*args, **kwargs):
        raise JobCancelled()  # what the job's progress check raises after a cancel

    monkeypatch.setattr("audiences.services._figures", cancelled_meanwhile)
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Loyal", definition=_definition(world), user=owner
        )
        _run(audience)
        job = Job.objects.get(pk=audience.job_id)
        assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled.")
        audience.refresh_from_db()
        assert (audience.status, audience.message) == (AudienceStatus.FAILED, NEVER_BUILT)


def test_an_audience_a_newer_build_took_over_is_left_alone(org, owner, world):
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Loyal", definition=_definition(world), user=owner
        )
        first = audience.job
        newer = audience_rebuild(organization=org, audience=audience, user=owner)
        job_cancel(job=first)
        audience = Audience.objects.get(pk=audience.pk)
        assert (audience.status, audience.job_id) == (AudienceStatus.BUILDING, newer.pk)
