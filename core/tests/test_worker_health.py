"""Jobs waiting with no worker say so on the jobs page (issue 8, item 5): 27 jobs sat
"queued" after the worker died, and nothing on the site told anyone why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.jobs import worker_heartbeat, worker_heartbeat_clear
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db
WARNING = "No worker is picking up jobs"


def _queued(org, *, minutes: float) -> Job:
    with tenant_context(org):
        return Job.objects.create(
            kind="demo",
            title="Import customers",
            status=JobStatus.QUEUED,
            created_at=timezone.now() - timedelta(minutes=minutes),
        )


def test_jobs_page_warns_when_queued_jobs_have_no_worker(owner_client, org):
    worker_heartbeat_clear()
    job = _queued(org, minutes=5)

    page = owner_client.get(reverse("core:jobs")).content.decode()
    detail = owner_client.get(reverse("core:job_detail", args=[job.pk])).content.decode()

    assert WARNING in page and WARNING in detail
    assert "make run" in page  # says what to do


def test_no_warning_while_a_worker_is_alive(owner_client, org):
    worker_heartbeat()
    _queued(org, minutes=5)

    assert WARNING not in owner_client.get(reverse("core:jobs")).content.decode()


def test_no_warning_for_a_job_queued_a_moment_ago(owner_client, org):
    worker_heartbeat_clear()
    _queued(org, minutes=0)

    assert WARNING not in owner_client.get(reverse("core:jobs")).content.decode()
