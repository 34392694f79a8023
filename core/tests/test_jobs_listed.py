"""Job kinds registered `listed=False` (the audience builder's model previews) are left
out of the jobs page, the dashboard and the API's job list unless asked for by kind,
are still read by their id, and send no `job.failed` webhook."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from core import jobs
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def _job(org, kind, title):
    with tenant_context(org):
        return Job.objects.create(
            kind=kind, title=title, status=JobStatus.SUCCEEDED,
            params={"_task": jobs.job_kind(kind).task_name},
        )  # fmt: skip


@pytest.fixture
def both(org):
    assert not jobs.job_kind("audience_preview").listed
    assert jobs.job_kind("segments").listed
    return _job(org, "segments", "Segments run"), _job(org, "audience_preview", "Preview run")


def test_pages_leave_out_unlisted_kinds_unless_asked_for(client, owner, both):
    listed, hidden = both
    client.force_login(owner)
    page = client.get(reverse("core:jobs")).content.decode()
    assert "Segments run" in page and "Preview run" not in page
    asked = client.get(reverse("core:jobs") + "?kind=audience_preview").content.decode()
    assert "Preview run" in asked
    dashboard = client.get(reverse("core:dashboard")).content.decode()
    assert "Preview run" not in dashboard
    assert client.get(reverse("core:job_detail", args=[hidden.pk])).status_code == 200


def test_api_list_leaves_them_out_but_reads_them_by_id(api, both):
    listed, hidden = both
    ids = {j["id"] for j in api.get("/api/v1/jobs/").json()["results"]}
    assert listed.pk in ids and hidden.pk not in ids
    asked = api.get("/api/v1/jobs/?kind=audience_preview").json()["results"]
    assert [j["id"] for j in asked] == [hidden.pk]
    assert api.get(f"/api/v1/jobs/{hidden.pk}/").status_code == 200


def test_an_unlisted_kinds_failure_sends_no_webhook(org, both, monkeypatch):
    import webhooks.events

    sent = []
    monkeypatch.setattr(webhooks.events, "emit", lambda *a, **k: sent.append(a))
    listed, hidden = both
    jobs._finish(hidden.pk, JobStatus.FAILED, "Too few responders.")
    assert sent == []
    jobs._finish(listed.pk, JobStatus.FAILED, "Broken.")
    assert [a[1] for a in sent] == ["job.failed"]
