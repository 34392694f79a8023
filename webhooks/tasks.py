"""The worker sends webhooks; nothing is sent from a request."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from core.jobs import TenantTask

from .models import DeliveryStatus, WebhookDelivery
from .services import backoff_seconds, delivery_attempt, delivery_hold, organization_is_active


@shared_task(bind=True, base=TenantTask, name="webhooks.tasks.webhook_deliver", max_retries=None)
def webhook_deliver(self, *, organization_id: int, job_id=None, delivery_id: int):
    """One attempt; a failure goes back to the queue after an exponential back-off
    (`WEBHOOKS_RETRY_BASE_SECONDS` × 4ⁿ) until `WEBHOOKS_MAX_ATTEMPTS` attempts. While
    the organisation is suspended the delivery is held, not attempted."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).select_related("endpoint").first()
    if delivery is None or delivery.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
        return None  # a repeated message, or the endpoint was deleted
    if not organization_is_active(organization_id):
        # Suspended: not attempted and no attempt used up; its reactivation sends it
        # again (services.deliveries_resume).
        delivery_hold(delivery)
        return None
    if not delivery.endpoint.is_active and delivery.event_type != "webhook.test":
        delivery.status, delivery.error = DeliveryStatus.FAILED, "The endpoint was switched off."
        delivery.save(update_fields=["status", "error"])
        return None
    if delivery_attempt(delivery):
        return None
    if delivery.status == DeliveryStatus.RETRYING:
        raise self.retry(
            countdown=backoff_seconds(delivery.attempts),
            max_retries=settings.WEBHOOKS_MAX_ATTEMPTS,
        )
    return None
