"""Offers API (CONTRACT.md, "Campaigns, offers and loyalty"): `offers/`,
`offers/{id}/`, `offers/{id}/codes/`, `offers/{id}/stats/`,
`offers/{id}/fairness-override/`, `offers/{id}/rebuild/`, and the suggestions
(`offers/suggestions/...`, offers/api_suggestions.py). Querysets come from the
scoped managers, so another organisation's ids answer 404; the hidden loyalty
reward offers are not listed."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from core.api.base import TenantViewSetMixin
from core.api.params import valid_body

from . import selectors, services, stats
from .api_suggestions import urlpatterns as suggestion_urlpatterns
from .models import Offer, OfferKind

TAGS = ["offers"]


class OfferSerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField(
        help_text="The percentage or amount (a number), the product's sku, or null for "
        "free delivery."
    )
    audience_id = serializers.IntegerField(read_only=True, allow_null=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    min_basket = serializers.FloatField(read_only=True, allow_null=True)
    recipients = serializers.IntegerField(source="recipients_count", read_only=True)
    holdout = serializers.IntegerField(source="holdout_count", read_only=True)
    override = serializers.SerializerMethodField(
        help_text='{"reason", "by", "at"} when the fairness flag was overridden, else null.'
    )
    send_problem = serializers.SerializerMethodField(
        help_text="Why a campaign cannot send this offer now, or null."
    )

    class Meta:
        model = Offer
        fields = [
            "id", "name", "kind", "value", "segment_ids", "audience_id", "code_mode",
            "shared_code", "holdout_share", "max_redemptions_per_code",
            "max_redemptions_total", "min_basket", "categories", "starts_at", "ends_at",
            "status", "message", "job", "built_at", "recipients", "holdout", "fairness",
            "fairness_flagged", "override", "send_problem", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.ANY)
    def get_value(self, obj):
        if obj.kind == OfferKind.FREE_SHIPPING or not obj.value:
            return None
        if obj.kind == OfferKind.PRODUCT:
            return obj.value
        return float(obj.value)

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "reason": {"type": "string"},
                "by": {"type": "string", "nullable": True},
                "at": {"type": "string", "format": "date-time", "nullable": True},
            },
        }
    )
    def get_override(self, obj) -> dict | None:
        if not obj.override_reason:
            return None
        return {
            "reason": obj.override_reason,
            "by": obj.override_by.email if obj.override_by_id and obj.override_by else None,
            "at": obj.override_at.isoformat() if obj.override_at else None,
        }

    def get_send_problem(self, obj) -> str | None:
        return services.offer_send_problem(offer=obj)


class OfferWriteSerializer(serializers.Serializer):
    """Shape only; the rules (and their messages naming the field) are in services."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    kind = serializers.CharField(
        required=False, help_text="percent, amount, free_shipping or product."
    )
    value = serializers.JSONField(
        required=False, allow_null=True, help_text="A number; a sku for product; none for "
        "free_shipping."
    )  # fmt: skip
    segment_ids = serializers.JSONField(required=False, allow_null=True)
    audience_id = serializers.JSONField(required=False, allow_null=True)
    code_mode = serializers.CharField(required=False, help_text="unique (default) or shared.")
    holdout_share = serializers.JSONField(required=False, help_text="0 to 0.5 (default 0.1).")
    max_redemptions_per_code = serializers.JSONField(required=False, help_text="Default 1.")
    max_redemptions_total = serializers.JSONField(required=False, allow_null=True)
    min_basket = serializers.JSONField(required=False, allow_null=True)
    categories = serializers.JSONField(required=False, allow_null=True)
    starts_at = serializers.JSONField(
        required=False, allow_null=True, help_text="ISO 8601; without a zone: the organisation's."
    )
    ends_at = serializers.JSONField(required=False, allow_null=True)


class OfferOverrideSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Why it may be sent anyway (10+ characters)."
    )


class OfferCodeSerializer(serializers.Serializer):
    customer = serializers.SerializerMethodField()
    code = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "external_id": {"type": "string"}},
        }
    )
    def get_customer(self, obj) -> dict:
        return {"id": obj.customer_id, "external_id": obj.customer.external_id}

    def get_code(self, obj) -> str:
        return selectors.recipient_code(self.context["offer"], obj)


_valid = valid_body


@extend_schema_view(
    list=extend_schema(summary="List offers", tags=TAGS),
    retrieve=extend_schema(summary="One offer with its status", tags=TAGS),
    destroy=extend_schema(
        summary="Delete an offer (refused with 409 once a campaign carrying it was sent)",
        tags=TAGS,
    ),
)
class OfferViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Targeted discounts with a code per customer and a hold-out."""

    model = Offer
    serializer_class = OfferSerializer
    lookup_value_regex = r"\d+"
    list_params = ()

    def get_base_queryset(self):
        # the loyalty programme's reward offers are its own business
        return super().get_base_queryset().filter(is_reward=False).select_related("override_by")

    @extend_schema(
        summary="Create an offer",
        description="201 with `status` `building` and the `job` that builds it: the "
        "recipients, the hold-out (who get no code), the codes and the fairness check.",
        request=OfferWriteSerializer,
        responses={201: OfferSerializer},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        data = _valid(OfferWriteSerializer, request)
        offer = services.offer_create(
            organization=request.organization, data=data, user=request.user, request=request
        )
        return Response(OfferSerializer(offer).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an offer",
        description="The name, the end and the limits can always change. The target, "
        "hold-out share, code mode, kind and value (which rebuild the offer), the start and "
        "the terms answer 409 once a code was used or a campaign carrying the offer started "
        "sending.",
        request=OfferWriteSerializer,
        responses={200: OfferSerializer},
        tags=TAGS,
    )
    def partial_update(self, request, *args, **kwargs):
        offer = self.get_object()
        data = _valid(OfferWriteSerializer, request, partial=True)
        offer = services.offer_update(
            organization=request.organization,
            offer=offer,
            data=data,
            user=request.user,
            request=request,
        )
        return Response(OfferSerializer(offer).data)

    def perform_destroy(self, instance):
        services.offer_delete(
            organization=self.request.organization,
            offer=instance,
            user=self.request.user,
            request=self.request,
        )

    @extend_schema(
        summary="The codes of an offer, one per recipient",
        description="The hold-out gets no code and is not listed; a shared offer lists its "
        "one code for each recipient.",
        responses=OfferCodeSerializer(many=True),
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def codes(self, request, pk=None):
        from core.api.params import check_list_params

        check_list_params(request.query_params, ())
        offer = self.get_object()
        page = self.paginate_queryset(selectors.offer_codes(offer=offer))
        return self.get_paginated_response(
            OfferCodeSerializer(page, many=True, context={"offer": offer}).data
        )

    @extend_schema(
        summary="An offer's results",
        responses={200: OpenApiTypes.OBJECT},
        description='`{"recipients", "holdout", "redeemed", "revenue", "discount_given", '
        '"conversion_rate", "holdout_conversion_rate", "incremental_revenue", "interval": '
        '[lo, hi] or null, "by_store": [...], "window": {"start", "end"}, "sample_note"}`; '
        "offers/stats.py defines each figure.",
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(stats.offer_stats(self.get_object()))

    @extend_schema(
        summary="Send a flagged offer anyway, with a recorded reason",
        description="Only for an offer the fairness check flagged (else 409); the reason "
        "(10 characters or more), who and when go in the audit log.",
        request=OfferOverrideSerializer,
        responses={200: OfferSerializer},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"], url_path="fairness-override")
    def fairness_override(self, request, pk=None):
        offer = self.get_object()
        data = _valid(OfferOverrideSerializer, request)
        offer = services.offer_override_fairness(
            organization=request.organization,
            offer=offer,
            reason=data.get("reason", ""),
            user=request.user,
            request=request,
        )
        return Response(OfferSerializer(offer).data)

    @extend_schema(
        summary="Build an offer again on its target's members now",
        description='202 `{"job": id}`. Customers who stay keep their code.',
        request=None,
        responses={202: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        offer = services.offer_rebuild(
            organization=request.organization, offer=self.get_object(), user=request.user
        )
        return Response({"job": offer.job_id}, status=status.HTTP_202_ACCEPTED)


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("offers", OfferViewSet, basename="offer")
urlpatterns = [*suggestion_urlpatterns, *router.urls]
