"""Webhook endpoints through the API: register, change, remove, test, read the log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.actor import Actor
from core.api.base import TenantModelViewSet

from .. import selectors, services
from ..models import WebhookEndpoint
from .serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookTestSerializer,
)


@extend_schema_view(
    list=extend_schema(summary="List webhook endpoints", tags=["webhooks"]),
    retrieve=extend_schema(summary="One webhook endpoint", tags=["webhooks"]),
    create=extend_schema(
        summary="Register a webhook endpoint",
        description="The answer holds the endpoint's signing `secret`. Deliveries are POSTed "
        "by the worker, signed (`Segmenta-Signature: t=<unix>,v1=<HMAC-SHA256 hex of "
        '"<t>.<body>">`), and retried with back-off; see the contract\'s Webhooks section.',
        responses={201: WebhookEndpointCreatedSerializer},
        tags=["webhooks"],
    ),
    update=extend_schema(summary="Replace a webhook endpoint", tags=["webhooks"]),
    partial_update=extend_schema(summary="Change a webhook endpoint", tags=["webhooks"]),
    destroy=extend_schema(summary="Remove a webhook endpoint", tags=["webhooks"]),
)
class WebhookEndpointViewSet(TenantModelViewSet):
    """Where the organisation's change notifications go."""

    model = WebhookEndpoint
    serializer_class = WebhookEndpointSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.endpoint_create(
            organization=self.request.organization,
            url=data["url"],
            event_types=data["event_types"],
            description=data.get("description", ""),
            actor=Actor.from_request(self.request),
            request=self.request,
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return Response(
            WebhookEndpointCreatedSerializer(serializer.instance).data,
            status=status.HTTP_201_CREATED,
        )

    def perform_update(self, serializer):
        serializer.instance = services.endpoint_update(
            endpoint=serializer.instance,
            actor=Actor.from_request(self.request),
            request=self.request,
            **serializer.validated_data,
        )

    def perform_destroy(self, instance):
        services.endpoint_delete(
            endpoint=instance, actor=Actor.from_request(self.request), request=self.request
        )

    @extend_schema(
        summary="Send a test event",
        request=None,
        responses={202: WebhookTestSerializer},
        description="Queues a `webhook.test` event to this endpoint; the worker sends it. "
        "Its outcome appears in deliveries/.",
        tags=["webhooks"],
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = services.endpoint_send_test(
            endpoint=self.get_object(), actor=Actor.from_request(request)
        )
        return Response({"delivery": delivery.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Delivery log of an endpoint",
        responses=WebhookDeliverySerializer(many=True),
        description="Newest first: each event sent here, its status and every attempt.",
        tags=["webhooks"],
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        page = self.paginate_queryset(selectors.deliveries(endpoint=self.get_object()))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
