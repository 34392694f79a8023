"""A build cancelled before it finished (while queued, when a worker picks it up, or
at a cancel check) does not leave the offer "building" for ever: it fails with a
plain reason (so it is not sent until rebuilt), keeps the codes of its last build,
and can be rebuilt."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from core.jobs import JobCancelled, job_cancel
from core.models import Job, JobStatus
from offers.models import Offer, OfferRecipient, OfferStatus
from offers.services import offer_create, offer_rebuild, offer_send_problem
from offers.tasks import offer_build
from offers.tests.factories import segment_world

NEVER_BUILT = "The build was cancelled before it finished. Rebuild it to make its codes."
BUILT_BEFORE = (
    "The build was cancelled before it finished. Rebuild it to bring its codes up to date."
)


@pytest.fixture
def world(org):
    return segment_world(org, n=20)


def _data(world):
    return {
        "name": "Spring 10%",
        "kind": "percent",
        "value": 10,
        "segment_ids": [world["segment"].pk],
    }


def _run(offer) -> None:
    """A worker picks up the offer's queued build job."""
    offer_build.apply(
        kwargs={
            "organization_id": offer.organization_id,
            "job_id": offer.job_id,
            "offer_id": offer.pk,
        }
    )


def test_cancelling_a_queued_build_fails_the_offer(api, world, django_capture_on_commit_callbacks):
    answer = api.post("/api/v1/offers/", _data(world), format="json")
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["status"] == "building"

    cancelled = api.post(f"/api/v1/jobs/{created['job']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    one = api.get(f"/api/v1/offers/{created['id']}/").json()
    assert (one["status"], one["message"]) == ("failed", NEVER_BUILT)
    assert one["send_problem"] and "could not be built" in one["send_problem"]

    with django_capture_on_commit_callbacks(execute=True):
        rebuilt = api.post(f"/api/v1/offers/{created['id']}/rebuild/")
    assert rebuilt.status_code == 202, rebuilt.content
    one = api.get(f"/api/v1/offers/{created['id']}/").json()
    assert (one["status"], one["message"], one["recipients"]) == ("ready", "", 18)


def test_a_cancelled_rebuild_keeps_the_codes_and_says_so(org, world):
    with tenant_context(org):
        offer = offer_create(organization=org, data=_data(world), sync=True)
        assert offer.status == OfferStatus.READY
        offer = offer_rebuild(organization=org, offer=offer)  # queued
        assert offer.status == OfferStatus.BUILDING
        job_cancel(job=offer.job)
        offer.refresh_from_db()
        assert (offer.status, offer.message) == (OfferStatus.FAILED, BUILT_BEFORE)
        assert offer_send_problem(offer=offer)  # not sent on codes that may be out of date
        assert OfferRecipient.objects.filter(offer=offer).count() == 20


def test_a_build_found_cancelled_when_a_worker_picks_it_up_fails_the_offer(org, world):
    with tenant_context(org):
        offer = offer_create(organization=org, data=_data(world))
        Job.objects.filter(pk=offer.job_id).update(cancel_requested=True)
        _run(offer)
        job = Job.objects.get(pk=offer.job_id)
        assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled before it started.")
        offer.refresh_from_db()
        assert (offer.status, offer.message) == (OfferStatus.FAILED, NEVER_BUILT)
        assert not OfferRecipient.objects.filter(offer=offer).exists()


def test_a_build_stopped_at_a_cancel_check_says_it_was_cancelled(org, world, monkeypatch):
    def cancelled_meanwhile(**kwargs):
        raise JobCancelled()  # what the job's progress check raises after a cancel

    monkeypatch.setattr("offers.services._nearest_stores", cancelled_meanwhile)
    with tenant_context(org):
        offer = offer_create(organization=org, data=_data(world))
        _run(offer)
        job = Job.objects.get(pk=offer.job_id)
        assert (job.status, job.message) == (JobStatus.CANCELLED, "Cancelled.")
        offer.refresh_from_db()
        assert (offer.status, offer.message) == (OfferStatus.FAILED, NEVER_BUILT)


def test_an_offer_a_newer_build_took_over_is_left_alone(org, world):
    with tenant_context(org):
        offer = offer_create(organization=org, data=_data(world))
        first = offer.job
        newer = offer_rebuild(organization=org, offer=offer).job
        job_cancel(job=first)
        offer = Offer.objects.get(pk=offer.pk)
        assert (offer.status, offer.job_id) == (OfferStatus.BUILDING, newer.pk)
