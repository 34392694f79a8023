"""Campaign jobs: send one campaign (a job with progress), and start the sends that are
due (a periodic task; several schedulers may run it at once)."""

from __future__ import annotations

import logging

from celery import shared_task

from core.jobs import TenantTask, register_job_kind

log = logging.getLogger("segmenta.campaigns")


@shared_task(base=TenantTask, bind=True, name="campaigns.tasks.campaign_send")
def campaign_send(self, *, organization_id: int, job_id: int | None, campaign_id: int):
    from .sending import campaign_send_run

    return campaign_send_run(campaign_id=campaign_id, job=self.job)


@shared_task(name="campaigns.tasks.send_due")
def send_due() -> int:
    """Start scheduled campaigns whose time has come and resume sends whose deliveries
    are now due (best hour, end of quiet hours), organisation by organisation. Each
    start is claimed with a conditional UPDATE, so it fires once."""
    from accounts.models import Organization
    from accounts.tenancy import tenant_context

    from .services import campaigns_start_due

    started = 0
    for org in Organization.objects.all().only("pk"):
        with tenant_context(org):
            try:
                started += campaigns_start_due()
            except Exception:
                log.exception("campaigns.send_due_failed org_id=%s", org.pk)
    return started


register_job_kind(name="campaign_send", task=campaign_send, role="marketer")
