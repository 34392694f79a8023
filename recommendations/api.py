"""Recommendations API (CONTRACT.md, "Recommendations and audiences"):
`customers/{id}/recommendations/`, `products/{id}/related/` and
`recommendations/models/latest/`. Customers and products come from the scoped
managers, so another organisation's ids answer 404."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError, NotFound

from . import selectors

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
]
