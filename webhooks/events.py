"""The one hook the rest of Segmenta calls: `emit(organization, type, payload)`.

Emitting writes one delivery per active endpoint of the organisation that asked
for the event type, and queues the worker's delivery task once the surrounding
transaction commits: nothing is sent from the request, and nothing at all when no
endpoint wants the event (one indexed query). Payloads carry ids, not personal
data (`docs/contract.md`, Webhooks).
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

log = logging.getLogger("segmenta.webhooks")

# type -> what it means, in plain words (the site's and the API's list)
EVENT_TYPES: dict[str, str] = {
    "segment.membership_changed": "A segmentation run changed who is in which segment",
    "prediction_run.finished": "A prediction run finished",
    "import.finished": "An import finished",
    "job.failed": "A background job failed",
    "customer.erased": "A customer was erased",
    "audience.rebuilt": "An audience was rebuilt (its size and members changed)",
    "webhook.test": "A test sent from the site or the API",
}
# Named now so integrations can plan for them; not sent yet, so not subscribable.
RESERVED_EVENT_TYPES: dict[str, str] = {}
SUBSCRIBABLE = [t for t in EVENT_TYPES if t != "webhook.test"]


def new_event(org_id: int, type: str, payload: dict) -> dict:  # noqa: A002
    """The body every endpoint receives for one event."""
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": type,
        "created_at": timezone.now().isoformat(),
        "organization_id": org_id,
        "data": payload,
    }


def emit(organization, type: str, payload: dict) -> int:  # noqa: A002 - the event's type
    """Queue `type` with `payload` for every endpoint of `organization` that wants it.
    Returns how many deliveries were queued. Never raises for the caller's sake: a
    notification must not break the work that caused it."""
    from accounts.tenancy import tenant_context

    from .models import WebhookDelivery, WebhookEndpoint

    org_id = getattr(organization, "pk", organization)
    if type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {type!r}")
    try:
        with tenant_context(org_id):
            endpoints = [
                e
                for e in WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types")
                if type in e.event_types
            ]
            if not endpoints:
                return 0
            body = new_event(org_id, type, payload)
            deliveries = WebhookDelivery.objects.bulk_create(
                [
                    WebhookDelivery(
                        organization_id=org_id,
                        endpoint=e,
                        event_id=body["id"],
                        event_type=type,
                        payload=body,
                    )
                    for e in endpoints
                ]
            )
    except Exception:  # noqa: BLE001 - logged; the caller's work goes on
        log.exception("webhooks.emit_failed org=%s type=%s", org_id, type)
        return 0
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _queue(org_id, ids))
    return len(ids)


def _queue(org_id: int, delivery_ids: list[int]) -> None:
    from .tasks import webhook_deliver

    for pk in delivery_ids:
        webhook_deliver.apply_async(kwargs={"organization_id": org_id, "delivery_id": pk})
