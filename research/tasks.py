"""The `research` pipeline step: sentiment, themes, trends per segment and "what
changed this month" (a thin wrapper around `analysis.research_run`)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from core.jobs import TenantTask


@shared_task(base=TenantTask, bind=True, name="research.tasks.research_run")
def research_run(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    from accounts.models import Organization

    from .analysis import research_run as run

    organization = Organization.objects.get(pk=organization_id)
    return run(
        organization=organization,
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        job=self.job,
    )
