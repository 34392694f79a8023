"""Offer jobs: build one offer (recipients, hold-out, codes, fairness), and the
`offers` pipeline step that re-derives redemptions from the orders."""

from __future__ import annotations

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="offers.tasks.offers_refresh")
def offers_refresh(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    return {"message": "No offers yet."}
