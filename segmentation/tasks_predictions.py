"""Prediction jobs: a thin Celery wrapper around `services.predictions.prediction_run`."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="segmentation.tasks_predictions.predictions_run")
def predictions_run(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    from accounts.models import Organization

    from .services.predictions import prediction_run

    organization = Organization.objects.get(pk=organization_id)
    run = prediction_run(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=self.job,
    )
    what = "simple averages (too little history)" if run.is_heuristic else "predictions"
    return {
        "message": (
            f"Made {what} for {run.n_customers:,} customers and {run.n_products:,} products "
            f"(orders up to {run.as_of:%d %b %Y})."
        ),
        "run_id": run.pk,
        "url": "/segments/predictions/",
    }
