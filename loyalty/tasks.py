"""The `loyalty` pipeline step: every customer's tier and points."""

from __future__ import annotations

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="loyalty.tasks.loyalty_refresh")
def loyalty_refresh(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    return {"message": "No loyalty programme yet."}
