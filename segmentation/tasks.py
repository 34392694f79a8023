"""Scheduled work for segmentation: one nightly scheduler fans out one job per organisation."""

import logging

from celery import shared_task

from accounts.models import Organization, OrganizationStatus
from accounts.tenancy import tenant_context

log = logging.getLogger("segmenta.pipeline")


@shared_task(name="segmentation.tasks.nightly_fanout")
def nightly_fanout() -> int:
    from .pipeline import pipeline_start

    count = 0
    # Organisations are not tenant rows; each org's jobs are started in its own scope.
    # A suspended organisation gets none (accounts/suspension.py): its jobs would
    # only wait, paused, until it is reactivated.
    for org in Organization.objects.filter(status=OrganizationStatus.ACTIVE).only("pk"):
        with tenant_context(org):
            try:
                pipeline_start(organization=org, reason="nightly")
                count += 1
            except Exception:
                log.exception("pipeline.nightly_failed org_id=%s", org.pk)
    return count
