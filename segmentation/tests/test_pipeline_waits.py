"""A pipeline step waits for an unfinished import of its organisation (issue 8, item
19): results computed on half an import must never go live."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from core import jobs as core_jobs
from core.models import Job, JobStatus
from customers.models import Import
from customers.tests.factories import ImportFactory
from segmentation.models import SegmentationRun
from segmentation.pipeline import pipeline_start
from segmentation.services import segments as segments_service
from segmentation.tests.factories import planted_customers

pytestmark = pytest.mark.django_db


def _import_running(org) -> Import:
    with tenant_context(org):
        job = Job.objects.create(
            kind="import",
            status=JobStatus.RUNNING,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
        return ImportFactory(organization=org, status="running", job=job)


def _finish(imp: Import) -> None:
    Import.all_objects.filter(pk=imp.pk).update(status="succeeded")
    Job.all_objects.filter(pk=imp.job_id).update(status=JobStatus.SUCCEEDED)


def test_a_step_waits_for_a_running_import_then_publishes(org, monkeypatch):
    planted_customers(org, n_customers=300)
    imp = _import_running(org)
    waited = []

    def import_finishes_meanwhile(seconds):
        waited.append(seconds)
        _finish(imp)

    monkeypatch.setattr(core_jobs, "_sleep", import_finishes_meanwhile)
    with tenant_context(org):
        result = pipeline_start(organization=org, steps=["segments"], sync=True)
        assert waited, "the step did not wait for the import"
        assert result["status"] == "succeeded"
        assert SegmentationRun.objects.filter(is_live=True).count() == 1


def test_nothing_goes_live_while_the_import_is_unfinished(org, settings):
    settings.JOB_WAIT_MAX_SECONDS = 0
    planted_customers(org, n_customers=300)
    _import_running(org)
    with tenant_context(org):
        result = pipeline_start(organization=org, steps=["segments", "predictions"], sync=True)
        assert result["status"] == "failed"
        for job in Job.objects.exclude(kind="import"):
            assert job.status == JobStatus.FAILED
            assert "import" in job.message.lower()
        assert not SegmentationRun.objects.exists()


def test_an_import_starting_during_the_step_holds_back_its_result(org, settings, monkeypatch):
    settings.JOB_WAIT_MAX_SECONDS = 0
    planted_customers(org, n_customers=300)
    compute = segments_service.segmentation_compute

    def import_starts_while_computing(**kwargs):
        computed = compute(**kwargs)
        _import_running(org)
        return computed

    monkeypatch.setattr(segments_service, "segmentation_compute", import_starts_while_computing)
    with tenant_context(org):
        result = pipeline_start(organization=org, steps=["segments"], sync=True)
        assert result["status"] == "failed"
        assert not SegmentationRun.objects.exists()
