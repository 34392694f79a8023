from rest_framework import serializers

from ..events import SUBSCRIBABLE
from ..models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.CharField(
        max_length=500,
        help_text="Where events are POSTed: https (or http), a public address.",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE),
        min_length=1,
        help_text="The events to send here.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="Signs every delivery (header Segmenta-Signature); shown in this answer "
        "and to members who may edit, on the site.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]


class WebhookAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status.")
    error = serializers.CharField(allow_blank=True)
    ms = serializers.IntegerField(help_text="How long the attempt took.")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    log = WebhookAttemptSerializer(many=True, help_text="Every attempt, oldest first.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "response_status",
            "error",
            "log",
            "payload",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "held_since",
        ]
        read_only_fields = fields


class WebhookTestSerializer(serializers.Serializer):
    delivery = serializers.IntegerField(help_text="The queued delivery's id (see deliveries/).")
