"""Defects a new owner hit (issue 9), each shown to fail before its fix."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from core.models import Job
from customers.tests.factories import ImportFactory

# --- the import page shows one status ------------------------------------------------------


@pytest.fixture
def running_import(org):
    with tenant_context(org):
        job = Job.objects.create(organization=org, kind="import", title="Import orders.csv")
        imp = ImportFactory(organization=org, status="queued", job=job)
    return imp


def _polled_urls(html: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r'hx-get="([^"]+)"[^>]*hx-trigger="every', html)]


def test_import_page_updates_its_status_and_report_together(owner_client, org, running_import):
    page = owner_client.get(reverse("customers:import_detail", args=[running_import.pk]))
    html = page.content.decode()
    assert "Queued" in html
    polled = _polled_urls(html)
    assert polled, "an unfinished import's page polls for its progress"

    # The worker finishes: the import and its job both succeed.
    with tenant_context(org):
        running_import.job.status = "succeeded"
        running_import.job.progress = 100
        running_import.job.save()
        running_import.status = "succeeded"
        running_import.rows = 12
        running_import.created = 12
        running_import.save()

    # Whatever the page polls brings back the import's status and report, so the
    # page never shows "Succeeded" beside a stale "Queued".
    for url in polled:
        fragment = owner_client.get(url, headers={"HX-Request": "true"}).content.decode()
        assert "Succeeded" in fragment
        assert "Queued" not in fragment
        assert "Rows read" in fragment
        # finished: nothing polls any more
        assert not _polled_urls(fragment)
