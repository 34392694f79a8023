"""Recommendation jobs: a thin Celery wrapper around `services.recommendations_run`."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.urls import reverse

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="recommendations.tasks.recommendations_run")
def recommendations_run(
    self, *, organization_id: int, job_id: int | None, as_of: str | None = None
):
    from accounts.models import Organization

    from .ml import KIND_LABELS
    from .services import recommendations_run as run_recommendations

    organization = Organization.objects.get(pk=organization_id)
    run = run_recommendations(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=self.job,
    )
    if run is None:
        return {"message": "No order names a product yet, so there is nothing to recommend."}
    return {
        "message": (
            f"Recommended products to {run.n_customers:,} customers with "
            f"{KIND_LABELS.get(run.served, run.served)} (purchases up to {run.cutoff:%d %b %Y})."
        ),
        "run_id": run.pk,
        "url": reverse("recommendations:overview"),
    }
