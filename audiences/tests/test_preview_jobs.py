"""The preview of a kind that fits a model (lookalike, response, a category goal) is
worked out by a background job, never in the request (issue 15): the request answers
at once with the job, the builder and API clients poll it, and the job's answer is
the one the preview in the request gave. The kinds that select still answer in the
request, as before.

Under the test settings Celery runs eagerly, but a job is sent only when the
request's transaction commits: the tests hold the sends back
(`django_capture_on_commit_callbacks`) to see the request answer before any work is
done, then run them to let the "worker" do it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import tenant_context
from audiences import services
from audiences.services import PREVIEW_JOB_KIND, audience_preview
from audiences.tests.helpers import segments_world
from core.jobs import job_cancel
from core.models import Job, JobStatus
from customers.models import Customer

PREVIEW = "/api/v1/audiences/preview/"
# the figures a preview answers (CONTRACT: audiences/preview/)
FIGURES = {
    "size", "candidates", "reachable", "expected_conversions", "model", "fairness",
    "best_channel", "unplaced", "notes", "definition", "estimated", "sample_size", "estimate",
}  # fmt: skip


@pytest.fixture
def shop(org):
    """40 customers (segments_world): segment A holds the first 20, B the last 20;
    even-numbered ones accept email, every fourth SMS. A's members are a lookalike
    seed whose look-alikes differ in visits."""
    world = segments_world(org)
    with tenant_context(org):
        for i, c in enumerate(world["customers"]):
            Customer.objects.filter(pk=c.pk).update(attributes={"visits": i % 7 + 10 * (i < 25)})
    return world


@pytest.fixture
def trainings(monkeypatch):
    """Counts the times the lookalike kind is evaluated (its model trained)."""
    import audiences.kinds

    real = audiences.kinds._HANDLERS["lookalike"]
    calls = []

    def counted(definition, *, organization, sample=None):
        calls.append(definition)
        return real(definition, organization=organization, sample=sample)

    monkeypatch.setitem(audiences.kinds._HANDLERS, "lookalike", counted)
    return calls


@pytest.fixture(autouse=True)
def _no_wait(settings):
    """Answer at once: the tests run the "worker" themselves after the request (the
    compatible wait has its own test below)."""
    settings.AUDIENCE_PREVIEW_API_WAIT_SECONDS = 0


def _lookalike(shop, segment="a"):
    return {"kind": "lookalike", "seed_segment_id": shop[segment].pk}


def _preview_jobs(org):
    with tenant_context(org):
        return list(Job.objects.filter(kind=PREVIEW_JOB_KIND).order_by("pk"))


def _run(callbacks):
    """What a worker does: send the queued jobs (eagerly, here)."""
    for callback in callbacks:
        callback()


def test_a_model_kind_answers_at_once_without_training(
    api, org, shop, trainings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as sends:
        answer = api.post(PREVIEW, {"definition": _lookalike(shop)}, format="json")
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["status"] == "queued" and body["progress"] == 0
    assert trainings == []  # nothing was trained in the request
    [job] = _preview_jobs(org)
    assert body["job"] == job.pk and job.status == JobStatus.QUEUED
    assert len(sends) == 1  # the job is sent to the queue when the request commits
    poll = f"/api/v1/audiences/preview/{job.pk}/"
    assert body["poll"].endswith(poll) and answer["Location"] == body["poll"]
    # still queued: asking again answers the same
    assert api.get(poll).status_code == 202


def test_the_job_gives_the_figures_the_request_gave(
    api, org, shop, trainings, django_capture_on_commit_callbacks
):
    definition = _lookalike(shop)
    with django_capture_on_commit_callbacks() as sends:
        started = api.post(PREVIEW, {"definition": definition}, format="json").json()
    _run(sends)
    assert len(trainings) == 1
    answer = api.get(started["poll"])
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body.pop("status") == "succeeded" and body.pop("job") == started["job"]
    assert set(body) == FIGURES
    # planted: everyone outside the seed (customers 20-39) is listed; of them the
    # even-numbered accept email (10) and every fourth SMS (20, 24, 28, 32, 36)
    assert body["size"] == 20 and body["candidates"] == 20
    assert body["reachable"] == {"email": 10, "sms": 5}
    assert body["model"]["kind"] and body["estimated"] is False
    # the same as the preview worked out in the request, as it was before (issue 15)
    with tenant_context(org):
        before = audience_preview(organization=org, definition=definition)
    before.pop("sample")
    assert body == json.loads(json.dumps(before))
    # the job says it is done, for the jobs list
    [job] = _preview_jobs(org)
    assert job.status == JobStatus.SUCCEEDED and job.progress == 100
    assert job.message == "20 customers."


def test_the_same_preview_asked_again_reuses_its_job(
    api, org, shop, trainings, django_capture_on_commit_callbacks
):
    definition = _lookalike(shop)
    with django_capture_on_commit_callbacks() as sends:
        first = api.post(PREVIEW, {"definition": definition}, format="json").json()
        again = api.post(PREVIEW, {"definition": definition}, format="json").json()
    assert again["job"] == first["job"]
    _run(sends)
    # answered at once from the finished job, with no training
    done = api.post(PREVIEW, {"definition": definition}, format="json")
    assert done.status_code == 200 and done.json()["size"] == 20
    assert len(trainings) == 1 and len(_preview_jobs(org)) == 1
    # a customer changed: the preview is worked out again
    with tenant_context(org):
        Customer.objects.filter(pk=shop["customers"][0].pk).update(
            updated_at=timezone.now() + dt.timedelta(minutes=1)
        )
    with django_capture_on_commit_callbacks():
        changed = api.post(PREVIEW, {"definition": definition}, format="json")
    assert changed.status_code == 202 and changed.json()["job"] != first["job"]


def test_the_kinds_that_select_still_answer_in_the_request(api, org, shop):
    answer = api.post(
        PREVIEW, {"definition": {"kind": "segments", "include": [shop["a"].pk]}}, format="json"
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == FIGURES  # unchanged: no job, no status
    assert body["size"] == 20 and body["reachable"] == {"email": 10, "sms": 5}
    located = api.post(
        PREVIEW, {"definition": {"kind": "location", "countries": ["GB"]}}, format="json"
    )
    assert located.status_code == 200 and "job" not in located.json()
    assert _preview_jobs(org) == []


def test_another_organisations_preview_job_is_not_found(
    api, client, marketer, org, other_org, shop, django_capture_on_commit_callbacks
):
    other = segments_world(other_org, n=4)
    with tenant_context(other_org), django_capture_on_commit_callbacks() as sends:
        theirs = services.audience_preview_request(
            organization=other_org, definition=_lookalike(other)
        ).job
    _run(sends)
    with tenant_context(other_org):
        assert Job.objects.get(pk=theirs.pk).is_finished
    assert api.get(f"/api/v1/audiences/preview/{theirs.pk}/").status_code == 404
    client.force_login(marketer)
    url = reverse("audiences:preview_job", kwargs={"job_id": theirs.pk})
    assert client.get(url).status_code == 404
    # nor is a job of ours that is not a preview
    with tenant_context(org):
        build = Job.objects.create(organization=org, kind="audience", status="succeeded")
    assert api.get(f"/api/v1/audiences/preview/{build.pk}/").status_code == 404
    assert (
        client.get(reverse("audiences:preview_job", kwargs={"job_id": build.pk})).status_code == 404
    )


def test_a_reason_in_the_data_is_the_answer_of_the_job(
    api, client, marketer, org, shop, django_capture_on_commit_callbacks
):
    """No one had the message: the job fails with the reason and its field, as the
    preview in the request did (400 naming the field)."""
    definition = {"kind": "response", "event": "clicked", "exposure_event": "email_sent"}
    with django_capture_on_commit_callbacks() as sends:
        started = api.post(PREVIEW, {"definition": definition}, format="json")
    assert started.status_code == 202
    _run(sends)
    answer = api.get(started.json()["poll"])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "not_enough_data"
    assert "No customer has had a 'email_sent' event" in error["message"]
    assert "exposure_event" in error["fields"]
    # the builder shows the sentence, with no button to try the same again
    client.force_login(marketer)
    page = client.get(
        reverse("audiences:preview_job", kwargs={"job_id": started.json()["job"]})
    ).content.decode()
    assert "No customer has had a &#x27;email_sent&#x27; event" in page
    assert "Work it out again" not in page and "hx-trigger" not in page
    # it would fail the same way: asking again answers from the job
    again = api.post(PREVIEW, {"definition": definition}, format="json")
    assert again.status_code == 400 and len(_preview_jobs(org)) == 1


def test_a_fault_in_the_job_gives_a_sentence_not_a_stack(
    api, client, marketer, org, shop, monkeypatch, django_capture_on_commit_callbacks
):
    import audiences.kinds

    def broken(definition, *, organization, sample=None):
        raise ValueError("window shape cannot be larger than input array shape")

    monkeypatch.setitem(audiences.kinds._HANDLERS, "lookalike", broken)
    client.force_login(marketer)
    data = {"kind": "lookalike", "seed_segment": str(shop["a"].pk)}
    with django_capture_on_commit_callbacks() as sends:
        started = client.post(reverse("audiences:preview"), data)
    assert "Working out who fits" in started.content.decode()
    _run(sends)
    [job] = _preview_jobs(org)
    assert job.status == JobStatus.FAILED
    page = client.get(reverse("audiences:preview_job", kwargs={"job_id": job.pk}))
    text = page.content.decode()
    assert page.status_code == 200
    assert "could not be worked out" in text and f"job {job.pk}" in text
    assert "window shape" not in text and "Traceback" not in text
    assert "Work it out again" in text and "hx-trigger" not in text  # polling stops
    answer = api.get(f"/api/v1/audiences/preview/{job.pk}/")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "preview_failed"
    assert "window shape" not in answer.content.decode()
    # a fault is not kept as the answer: asking again starts a new job
    with django_capture_on_commit_callbacks():
        client.post(reverse("audiences:preview"), data)
    assert len(_preview_jobs(org)) == 2


def test_a_cancelled_preview_says_so(
    api, client, marketer, org, shop, trainings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as sends:
        started = api.post(PREVIEW, {"definition": _lookalike(shop)}, format="json").json()
    with tenant_context(org):
        job_cancel(job=Job.objects.get(pk=started["job"]))
    _run(sends)  # the worker finds it cancelled and does nothing
    assert trainings == []
    answer = api.get(started["poll"])
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "preview_cancelled"
    client.force_login(marketer)
    page = client.get(
        reverse("audiences:preview_job", kwargs={"job_id": started["job"]})
    ).content.decode()
    assert "stopped before it finished" in page and "Work it out again" in page


def test_the_builder_shows_progress_and_polls_until_done(
    client, marketer, viewer, org, shop, trainings, django_capture_on_commit_callbacks
):
    """The region shows "Working out who fits… N%" with a progress bar and polls the
    job; once done, the figures, and polling stops. A viewer may poll it too."""
    client.force_login(marketer)
    data = {"kind": "lookalike", "seed_segment": str(shop["a"].pk)}
    with django_capture_on_commit_callbacks() as sends:
        response = client.post(reverse("audiences:preview"), data)
    assert trainings == []
    [job] = _preview_jobs(org)
    url = reverse("audiences:preview_job", kwargs={"job_id": job.pk})
    page = response.content.decode()
    assert "Working out who fits… 0%" in page and "Waiting to start" in page
    assert f'hx-get="{url}"' in page and 'hx-trigger="every 1s"' in page
    assert f'name="preview_job" value="{job.pk}"' in page
    with tenant_context(org):
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.RUNNING, progress=40, message="Describing each customer"
        )
    page = client.get(url).content.decode()
    assert "Working out who fits… 40%" in page and 'aria-valuenow="40"' in page
    assert "Describing each customer" in page and 'hx-trigger="every 1s"' in page
    with tenant_context(org):
        Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, progress=0, message="")
    _run(sends)
    client.force_login(viewer)
    done = client.get(url)
    text = done.content.decode()
    assert done.context["fig"]["size"] == 20
    assert "Working out who fits" not in text and "hx-trigger" not in text
    assert "Reachable by email" in text


def test_a_preview_waiting_with_no_worker_says_so(client, marketer, org, shop):
    with tenant_context(org):
        job = Job.objects.create(
            organization=org,
            kind=PREVIEW_JOB_KIND,
            params={"definition": _lookalike(shop), "preview_key": "k"},
            created_at=timezone.now() - dt.timedelta(minutes=2),
        )
    client.force_login(marketer)
    page = client.get(reverse("audiences:preview_job", kwargs={"job_id": job.pk}))
    assert "Nothing is working on background tasks" in page.content.decode()


def test_a_preview_whose_worker_stopped_says_so(client, marketer, org, shop, settings):
    with tenant_context(org):
        job = Job.objects.create(
            organization=org,
            kind=PREVIEW_JOB_KIND,
            status=JobStatus.RUNNING,
            progress=35,
            params={"definition": _lookalike(shop), "preview_key": "k"},
            heartbeat_at=timezone.now()
            - dt.timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 60),
        )
    client.force_login(marketer)
    page = client.get(reverse("audiences:preview_job", kwargs={"job_id": job.pk}))
    text = page.content.decode()
    assert "stopped answering" in text and "Work it out again" in text
    assert "hx-trigger" not in text


def test_a_changed_audience_stops_the_preview_it_replaces(
    client, marketer, api, org, shop, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    with django_capture_on_commit_callbacks():
        client.post(
            reverse("audiences:preview"), {"kind": "lookalike", "seed_segment": str(shop["a"].pk)}
        )
        [first] = _preview_jobs(org)
        # someone else's (an API client's) preview job is never stopped by the builder
        theirs = api.post(PREVIEW, {"definition": _lookalike(shop, "b")}, format="json").json()
        for replaced in (first.pk, theirs["job"]):
            client.post(
                reverse("audiences:preview"),
                {
                    "kind": "lookalike",
                    "seed_segment": str(shop["b"].pk),
                    "top_n": "5",
                    "preview_job": str(replaced),
                },
            )
    jobs = {j.pk: j for j in _preview_jobs(org)}
    assert jobs[first.pk].status == JobStatus.CANCELLED
    assert jobs[theirs["job"]].status == JobStatus.QUEUED
    assert len(jobs) == 3  # the changed audience's job, started once and reused


def test_an_erased_seed_customer_leaves_the_preview_job(
    api, org, owner, shop, django_capture_on_commit_callbacks
):
    from customers.services.privacy import customer_erase

    seed = [c.external_id for c in shop["customers"][:12]]
    with django_capture_on_commit_callbacks():
        started = api.post(
            PREVIEW, {"definition": {"kind": "lookalike", "seed_customer_ids": seed}}, format="json"
        ).json()
    gone = shop["customers"][3]
    with tenant_context(org), django_capture_on_commit_callbacks():
        customer_erase(customer=Customer.objects.get(pk=gone.pk), actor=owner)
        job = Job.objects.get(pk=started["job"])
    held = job.params["definition"]["seed_customer_ids"]
    assert gone.external_id not in held and len(held) == 11
    assert job.params["preview_key"] == ""  # never reused


def test_old_preview_jobs_are_removed(api, org, shop, django_capture_on_commit_callbacks):
    with tenant_context(org):
        old = Job.objects.create(
            organization=org,
            kind=PREVIEW_JOB_KIND,
            status=JobStatus.SUCCEEDED,
            created_at=timezone.now() - dt.timedelta(days=2),
        )
        kept = Job.objects.create(organization=org, kind="audience", status="succeeded")
        Job.objects.filter(pk=kept.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    with django_capture_on_commit_callbacks():
        api.post(PREVIEW, {"definition": _lookalike(shop)}, format="json")
    with tenant_context(org):
        assert not Job.objects.filter(pk=old.pk).exists()
        assert Job.objects.filter(pk=kept.pk).exists()


@pytest.mark.parametrize(
    ("definition", "fits"),
    [
        ({"kind": "lookalike", "seed_segment_id": 1}, True),
        ({"kind": "response", "event": "clicked", "exposure_event": "sent"}, True),
        ({"kind": "goal", "goal": "buy_category", "category": "Tea"}, True),
        ({"kind": "goal", "goal": "order_soon"}, False),
        ({"kind": "goal", "goal": "high_value_at_risk"}, False),
        ({"kind": "segments", "include": [1]}, False),
        ({"kind": "location", "countries": ["GB"]}, False),
    ],
)
def test_which_kinds_fit_a_model(definition, fits):
    from audiences.definitions import definition_clean
    from audiences.kinds import trains_model

    assert trains_model(definition_clean(definition)) is fits


def test_the_api_waits_for_the_job_unless_asked_to_answer_at_once(
    api, org, shop, settings, monkeypatch
):
    """Integrations written before previews were jobs read 200 with the figures from
    the POST: without `Prefer: respond-async` it waits for the job (which a worker
    runs meanwhile), up to AUDIENCE_PREVIEW_API_WAIT_SECONDS."""
    import time

    from core.jobs import _send

    settings.AUDIENCE_PREVIEW_API_WAIT_SECONDS = 30
    naps: list = []

    def worker_runs_meanwhile(seconds):
        # the test's transaction holds the job's send: play the worker taking it
        naps.append(seconds)
        with tenant_context(org):
            for job in Job.objects.filter(kind=PREVIEW_JOB_KIND, status=JobStatus.QUEUED):
                _send(job)

    monkeypatch.setattr(time, "sleep", worker_runs_meanwhile)
    at_once = api.post(
        PREVIEW, {"definition": _lookalike(shop)}, format="json", HTTP_PREFER="respond-async"
    )
    assert at_once.status_code == 202 and naps == []  # asked to answer at once
    waited = api.post(PREVIEW, {"definition": _lookalike(shop, "b")}, format="json")
    assert waited.status_code == 200, waited.content
    body = waited.json()
    assert body["status"] == "succeeded" and set(body) - {"status", "job"} == FIGURES
    assert naps  # it waited for the job


def test_the_api_answers_202_when_the_job_outlasts_the_wait(api, shop, settings, monkeypatch):
    import time

    settings.AUDIENCE_PREVIEW_API_WAIT_SECONDS = 0.01
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # no worker takes it
    answer = api.post(PREVIEW, {"definition": _lookalike(shop)}, format="json")
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
