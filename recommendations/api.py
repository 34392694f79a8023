"""Recommendations API (CONTRACT.md, "Recommendations and audiences"):
`customers/{id}/recommendations/`, `products/{id}/related/`,
`recommendations/models/latest/` and `recommendations/settings/`. Customers and products come from the scoped
managers, so another organisation's ids answer 404."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError, NotFound

from . import selectors, services
from .models import Repeats

LIMIT = OpenApiParameter(
    "limit", OpenApiTypes.INT, description="At most this many (1-10, default 10)."
)


def _limit(request) -> int:
    raw = (request.query_params.get("limit") or "").strip()
    if not raw:
        return 10
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 10:
        raise ApplicationError(
            "limit must be a whole number from 1 to 10.", {"fields": {"limit": "From 1 to 10."}}
        )
    return value


class CustomerRecommendationsView(APIView):
    @extend_schema(
        summary="A customer's recommended products, best first",
        description="404 `no_model` before the first recommendations run. A customer who "
        "bought nothing gets their segment's popular products.",
        parameters=[LIMIT],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, pk: int):
        from customers.models import Customer

        customer = Customer.objects.filter(pk=pk, erased_at__isnull=True).first()
        if customer is None:
            raise NotFound("No such customer.")
        run, items = selectors.customer_recommendations(customer=customer, limit=_limit(request))
        return Response({"results": items, "model": run.served})


class ProductRelatedView(APIView):
    @extend_schema(
        summary="Products bought together with this one",
        description="404 `no_model` before the first recommendations run. A product "
        "nobody bought yet gets its category's best-sellers.",
        parameters=[LIMIT],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, pk: int):
        from customers.models import Product

        product = Product.objects.filter(pk=pk).first()
        if product is None:
            raise NotFound("No such product.")
        return Response(
            {"results": selectors.product_related(product=product, limit=_limit(request))}
        )


class ModelLatestView(APIView):
    @extend_schema(
        summary="The live recommendations run: the model served and every candidate's "
        "hold-out evaluation",
        description="404 `no_model` before any run. Popularity is always evaluated.",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        data = selectors.model_latest()
        if data is None:
            raise selectors.NoModel()
        return Response(data)


class RecommendationSettingsSerializer(serializers.Serializer):
    repeats = serializers.ChoiceField(
        choices=Repeats.values,
        help_text="Recommend products a customer bought before: auto (as the hold-out "
        "says), always or never. Used from the next run.",
    )


def _settings_answer(row) -> dict:
    run = selectors.live_run()
    return {
        "repeats": row.repeats,
        "updated_at": row.updated_at,
        # what the live run does; a change shows from the next run
        "live_run": None
        if run is None
        else {"repeats": run.repeats, "repeats_setting": run.repeats_setting},
    }


class SettingsView(APIView):
    @extend_schema(
        summary="Recommendation settings",
        description="`repeats`: auto | always | never; `live_run` says what the live run "
        "does (null before any run).",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return Response(_settings_answer(services.recommendation_settings_get()))

    @extend_schema(
        summary="Change whether products bought before are recommended (from the next run)",
        description="Marketers, admins and owners (or a write key); recorded in the audit log.",
        request=RecommendationSettingsSerializer,
        responses={200: OpenApiTypes.OBJECT},
    )
    def put(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        if "repeats" not in data:
            raise ApplicationError(
                "repeats is required: auto, always or never.",
                {"fields": {"repeats": "Required."}},
            )
        row = services.recommendation_settings_update(
            organization=request.organization,
            repeats=data["repeats"],
            user=request.user,
            request=request,
        )
        return Response(_settings_answer(row))


urlpatterns = [
    path(
        "customers/<int:pk>/recommendations/",
        CustomerRecommendationsView.as_view(),
        name="customer-recommendations",
    ),
    path("products/<int:pk>/related/", ProductRelatedView.as_view(), name="product-related"),
    path(
        "recommendations/models/latest/",
        ModelLatestView.as_view(),
        name="recommendation-model-latest",
    ),
    path(
        "recommendations/settings/",
        SettingsView.as_view(),
        name="recommendation-settings",
    ),
]
