"""The `loyalty` pipeline step: every customer's tier and points (a thin wrapper
around `services.loyalty_refresh`)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="loyalty.tasks.loyalty_refresh")
def loyalty_refresh(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    from accounts.models import Organization

    from .services import loyalty_refresh as refresh

    organization = Organization.objects.get(pk=organization_id)
    return refresh(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=self.job,
    )
