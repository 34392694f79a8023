"""Test data for webhooks, and `build_world` for the tenant isolation sweep."""

from __future__ import annotations

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    """One endpoint and one logged delivery of `organization`."""
    from webhooks.models import WebhookDelivery, WebhookEndpoint

    with tenant_context(organization):
        endpoint = WebhookEndpoint.objects.create(
            organization=organization,
            url="https://hooks.example.com/segmenta",
            event_types=["import.finished", "job.failed"],
        )
        WebhookDelivery.objects.create(
            organization=organization,
            endpoint=endpoint,
            event_id="evt_world",
            event_type="import.finished",
            payload={"id": "evt_world", "type": "import.finished", "data": {"import_id": 1}},
        )
