"""Segmentation jobs: a thin Celery wrapper around `services.segments.segmentation_run`
(then the segment pages' kept figures of the new run are worked out)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="segmentation.tasks_segments.segments_run")
def segments_run(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    from accounts.models import Organization

    from .services.segments import segmentation_run

    organization = Organization.objects.get(pk=organization_id)
    run = segmentation_run(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=self.job,
    )
    from django.db import transaction

    from accounts.tenancy import tenant_context
    from webhooks.events import emit

    from .selectors import segment_figures_warm

    def warm() -> None:
        # in the organisation's scope even when the commit comes after the job's
        with tenant_context(organization):
            segment_figures_warm(organization=organization)

    # the figures the segment pages keep, worked out for the new run once it is
    # committed, here in the job, so the first view after a run does not
    transaction.on_commit(warm)
    emit(
        organization,
        "segment.membership_changed",
        {
            "run_id": run.pk,
            "job_id": job_id,
            "as_of": run.as_of.isoformat(),
            "customers": run.n_customers,
        },
    )
    return {
        "message": (
            f"Found {run.chosen_k} segments among {run.n_customers:,} customers "
            f"(data up to {run.as_of:%d %b %Y})."
        ),
        "run_id": run.pk,
        "url": "/segments/",
    }
