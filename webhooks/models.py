"""Webhook endpoints an organisation registers, and the log of deliveries to them."""

from __future__ import annotations

import secrets

from django.db import models

from accounts.tenancy import TenantModel


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(TenantModel):
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)  # names from webhooks.events.EVENT_TYPES
    secret = models.CharField(max_length=100, default=new_secret)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    RETRYING = "retrying", "Failed, will try again"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDelivery(TenantModel):
    """One event sent to one endpoint, with every attempt made."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=40)  # the same for every endpoint an event goes to
    event_type = models.CharField(max_length=60)
    payload = models.JSONField(default=dict)  # the whole body sent (ids, no personal data)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    log = models.JSONField(default=list)  # [{"at", "status", "error", "ms"}] per attempt
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # set while the organisation is suspended: not attempted (attempts unchanged) and
    # sent again on its reactivation (webhooks.services.deliveries_resume)
    held_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            models.Index(
                fields=["organization"],
                condition=models.Q(held_since__isnull=False),
                name="webhookdelivery_org_held",
            ),
        ]

    @property
    def event_label(self) -> str:
        """The event in plain words (the site's log)."""
        from .events import EVENT_TYPES

        return EVENT_TYPES.get(self.event_type, self.event_type)
