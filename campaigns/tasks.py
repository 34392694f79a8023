"""Campaign jobs: send one campaign (a job with progress), and start the sends that are
due (a periodic task; several schedulers may run it at once); evaluate automations
(`automations_due`, every 15 minutes: an `automations_run` job per organisation with
active automations). Both pass suspended organisations by (campaigns/rules.py): their
sends wait for reactivation. Attribute conversions (sends nothing, so it goes on for a
suspended organisation too) (`conversions_due`: every 15 minutes for
organisations that sent in the last 60 days, looking at what changed lately; nightly
in full; and after each orders import, through the receiver below)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

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

    from .rules import organization_active
    from .services import campaigns_start_due

    started = 0
    for org in Organization.objects.all().only("pk"):
        if not organization_active(org.pk):
            continue  # suspended: its campaigns stay scheduled until it is reactivated
        with tenant_context(org):
            try:
                started += campaigns_start_due()
            except Exception:
                log.exception("campaigns.send_due_failed org_id=%s", org.pk)
    return started


@shared_task(base=TenantTask, bind=True, name="campaigns.tasks.automations_run")
def automations_run(self, *, organization_id: int, job_id: int | None):
    from accounts.models import Organization

    from .automations import automations_evaluate

    organization = Organization.objects.get(pk=organization_id)
    return automations_evaluate(organization=organization, job=self.job)


@shared_task(name="campaigns.tasks.automations_due")
def automations_due() -> int:
    """Start an `automations_run` job for each organisation with active automations,
    unless one is waiting or running already (each automation is also claimed by its
    evaluation, so two jobs never send the same occurrence)."""
    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from core.jobs import job_start
    from core.models import Job, JobStatus

    from .models import Automation
    from .rules import organization_active

    started = 0
    for org in Organization.objects.all():
        if not organization_active(org.pk):
            continue  # suspended: nothing is evaluated or sent until it is reactivated
        with tenant_context(org):
            try:
                if not Automation.objects.filter(active=True).exists():
                    continue
                busy = (JobStatus.QUEUED, JobStatus.RUNNING)
                if Job.objects.filter(kind="automations_run", status__in=busy).exists():
                    continue
                job_start(
                    organization=org, kind="automations_run", task=automations_run,
                    title="Run automations",
                )  # fmt: skip
                started += 1
            except Exception:
                log.exception("campaigns.automations_due_failed org_id=%s", org.pk)
    return started


RECENT_SENDS_DAYS = 60
LOOK_BACK_MINUTES = 45  # three periods of the 15-minute task: a late run misses nothing


@shared_task(name="campaigns.tasks.conversions_due")
def conversions_due(full: bool = False) -> int:
    """Attribute conversions for every organisation that sent in the last 60 days: the
    customers whose touches or orders changed in the last 45 minutes, or (`full`,
    nightly) everyone. Idempotent."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Organization
    from accounts.tenancy import tenant_context

    from .models import Delivery
    from .tracking import attribute_conversions

    now = timezone.now()
    changed = 0
    for org in Organization.objects.all():
        with tenant_context(org):
            try:
                recent = Delivery.objects.filter(
                    sent_at__gte=now - timedelta(days=RECENT_SENDS_DAYS)
                )
                if not recent.exists():
                    continue
                since = None if full else now - timedelta(minutes=LOOK_BACK_MINUTES)
                changed += attribute_conversions(organization=org, since=since)
            except Exception:
                log.exception("campaigns.conversions_failed org_id=%s", org.pk)
    return changed


@shared_task(name="campaigns.tasks.conversions_attribute")
def conversions_attribute(*, organization_id: int, since: str | None = None) -> int:
    """Attribute one organisation's conversions (after an orders import)."""
    from django.utils.dateparse import parse_datetime

    from accounts.models import Organization
    from accounts.tenancy import tenant_context

    from .tracking import attribute_conversions

    with tenant_context(organization_id):
        organization = Organization.objects.get(pk=organization_id)
        return attribute_conversions(
            organization=organization, since=parse_datetime(since) if since else None
        )


@receiver(post_save, sender="customers.Import")
def _orders_import_finished(sender, instance, **kwargs) -> None:
    """An orders import that finished: attribute its orders to the messages before them
    once it is committed (bulk orders through the API: the 15-minute task)."""
    if instance.kind != "orders" or instance.status != "succeeded":
        return
    since = (instance.started_at or instance.created_at).isoformat()
    organization_id = instance.organization_id

    def attribute() -> None:
        try:
            conversions_attribute.delay(organization_id=organization_id, since=since)
        except Exception:  # never break the import for it: the periodic task follows
            log.exception("campaigns.conversions_after_import_failed org_id=%s", organization_id)

    transaction.on_commit(attribute)


def _send_cancelled(job) -> None:
    from .sending import campaign_send_cancelled

    campaign_send_cancelled(job=job)


register_job_kind(
    name="campaign_send", task=campaign_send, role="marketer", on_cancelled=_send_cancelled
)
register_job_kind(name="automations_run", task=automations_run, role="marketer")
