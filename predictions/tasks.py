"""Prediction jobs: a thin Celery wrapper around `services.prediction_run`."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="predictions.tasks.predictions_run")
def predictions_run(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    return _run(self, organization_id=organization_id, as_of=as_of)


def _run(task, *, organization_id: int, as_of: str | None) -> dict:
    from accounts.models import Organization

    from .services import prediction_run

    organization = Organization.objects.get(pk=organization_id)
    run = prediction_run(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=task.job,
    )
    from webhooks.events import emit

    emit(
        organization,
        "prediction_run.finished",
        {
            "run_id": run.pk,
            "job_id": task.job.job_id,
            "as_of": run.as_of.isoformat(),
            "customers": run.n_customers,
            "products": run.n_products,
        },
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


# The name the task had before predictions had an app of their own: jobs queued under
# it (or re-run from an old job) still run.
@shared_task(base=TenantTask, bind=True, name="segmentation.tasks_predictions.predictions_run")
def predictions_run_former_name(
    self, *, organization_id: int, job_id: int | None, as_of: str | None = None
):
    return _run(self, organization_id=organization_id, as_of=as_of)
