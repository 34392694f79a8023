"""Automations API (CONTRACT.md): `automations/`, `automations/{id}/` and
`automations/{id}/stats/`, mounted with the campaigns API (campaigns/api.py).
Querysets come from the scoped managers, so another organisation's ids answer 404."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from core.api.base import TenantViewSetMixin
from core.exceptions import ApplicationError

from . import automations
from .models import Automation

TAGS = ["automations"]


class AutomationSerializer(serializers.ModelSerializer):
    trigger = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()

    class Meta:
        model = Automation
        fields = [
            "id", "name", "trigger", "message", "active", "watch_from", "last_evaluated_at",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_trigger(self, obj) -> dict:
        return {"kind": obj.trigger_kind, "params": obj.trigger_params}

    def get_message(self, obj) -> dict:
        return {
            "channel": obj.channel,
            "subject": obj.subject,
            "body": obj.body,
            "conversion_window_days": obj.conversion_window_days,
        }


class AutomationWriteSerializer(serializers.Serializer):
    """Shape only; the rules (and their messages naming the field) are in
    campaigns/automations.py."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    trigger = serializers.JSONField(
        required=False, help_text='{"kind": "enters_segment"|..., "params": {...}}'
    )
    message = serializers.JSONField(
        required=False,
        help_text='{"channel": "email"|"sms", "subject", "body", "conversion_window_days"?}',
    )
    active = serializers.JSONField(required=False)


def _data(request, partial: bool) -> dict:
    if not isinstance(request.data, dict):
        raise ApplicationError("The body must be a JSON object.")
    data = AutomationWriteSerializer(data=request.data, partial=partial)
    if not data.is_valid():
        fields = {k: " ".join(str(m) for m in v) for k, v in data.errors.items()}
        raise ApplicationError(
            "The request is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
            {"fields": fields},
        )
    return dict(data.validated_data)


@extend_schema_view(
    list=extend_schema(summary="List automations", tags=TAGS),
    retrieve=extend_schema(summary="One automation", tags=TAGS),
    destroy=extend_schema(
        summary="Delete an automation (with its messages' records and results)", tags=TAGS
    ),
)
class AutomationViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A message sent to each customer once per occurrence of a trigger."""

    model = Automation
    serializer_class = AutomationSerializer
    lookup_value_regex = r"\d+"
    list_params = ()

    @extend_schema(
        summary="Create an automation",
        request=AutomationWriteSerializer,
        responses={201: AutomationSerializer},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        automation = automations.automation_create(
            organization=request.organization, data=_data(request, False), user=request.user
        )
        return Response(AutomationSerializer(automation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an automation (its name, trigger, message or whether it is active)",
        request=AutomationWriteSerializer,
        responses={200: AutomationSerializer},
        tags=TAGS,
    )
    def partial_update(self, request, *args, **kwargs):
        automation = self.get_object()
        automation = automations.automation_update(
            organization=request.organization, automation=automation, data=_data(request, True)
        )
        return Response(AutomationSerializer(automation).data)

    def perform_destroy(self, instance):
        automations.automation_delete(organization=self.request.organization, automation=instance)

    @extend_schema(
        summary="An automation's results",
        responses={200: OpenApiTypes.OBJECT},
        description="A campaign's figures over every message the automation sent, and "
        "`occurrences` (how many times its trigger occurred for a customer).",
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(automations.automation_stats(self.get_object()))


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("automations", AutomationViewSet, basename="automation")
urlpatterns = [*router.urls]
