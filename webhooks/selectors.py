"""Reads of webhook endpoints and their delivery log (current organisation)."""

from __future__ import annotations

from .models import WebhookDelivery, WebhookEndpoint


def endpoints():
    return WebhookEndpoint.objects.all()


def deliveries(*, endpoint: WebhookEndpoint):
    return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")
