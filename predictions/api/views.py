"""Predictions API (CONTRACT.md): `predictions/models/latest/`, the live run's
`predictions/customers/` and `predictions/products/`, `predictions/runs/` (list,
detail, start one) and `predictions/settings/`. Querysets come from the scoped
managers, so another organisation's ids answer 404."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from core.api.base import TenantViewSetMixin
from core.api.pagination import RunPagination
from core.api.params import UPDATED_SINCE, id_param, updated_since_filter
from core.exceptions import ApplicationError, NotFound

from .. import selectors, services
from ..models import ChurnRisk, CustomerPrediction, PredictionRun, ProductForecast, Trend
from .serializers import (
    CustomerPredictionSerializer,
    ModelLatestSerializer,
    PredictionRunListSerializer,
    PredictionRunSerializer,
    ProductForecastSerializer,
    RunStartSerializer,
    SettingsSerializer,
)

CUSTOMER_ORDERING = (
    "predicted_clv_365d",
    "churn_probability",
    "p_alive",
    "expected_orders_90d",
    "propensity",
    "expected_next_order_at",
)


def _ordering(raw: str | None, allowed: tuple[str, ...], default: str) -> str:
    value = (raw or "").strip() or default
    if value.lstrip("-") not in allowed:
        raise ApplicationError(
            f"Cannot order by '{value}'. Use one of: {', '.join(allowed)} (prefix - for "
            "descending).",
            {"fields": {"ordering": "Unknown field."}},
        )
    return value


def _person(request):
    """The signed-in user, or None for an API key (which acts without a user account)."""
    user = getattr(request, "user", None)
    return user if getattr(user, "pk", None) is not None else None


def _many(request, name: str) -> list[str]:
    values = []
    for raw in request.query_params.getlist(name):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    return values


class LiveRunListMixin:
    """A list of the live run's rows names that run (`run: {id, as_of, created_at}`,
    null before any run): a reader paging through can tell when a new run was
    published underneath and start again."""

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        run = PredictionRun.objects.filter(is_live=True).first()
        response.data["run"] = (
            None
            if run is None
            else {"id": run.pk, "as_of": run.as_of, "created_at": run.created_at}
        )
        return response


class ModelLatestView(APIView):
    @extend_schema(
        summary="The live run's fitted CLV models and back-test",
        description="404 before any prediction run. `params` are BG/NBD's (r, alpha in "
        "`time_unit`, a, b), `spend_params` Gamma-Gamma's; `backtest` is null when the "
        "history was too short to hold a period back (`backtest_note` says why).",
        responses={200: ModelLatestSerializer},
    )
    def get(self, request):
        data = selectors.model_latest()
        if data is None:
            raise NotFound("No prediction run yet. Start one with POST predictions/runs/.")
        return Response(data)


class SettingsView(APIView):
    @extend_schema(summary="Prediction settings", responses=SettingsSerializer)
    def get(self, request):
        row = services.prediction_settings_get()
        return Response({"annual_discount_rate": row.annual_discount_rate})

    @extend_schema(
        summary="Change the discount rate (used from the next run)",
        request=SettingsSerializer,
        responses=SettingsSerializer,
    )
    def patch(self, request):
        data = SettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.prediction_settings_update(
            organization=request.organization,
            annual_discount_rate=data.validated_data["annual_discount_rate"],
            user=_person(request),
        )
        return Response({"annual_discount_rate": row.annual_discount_rate})


@extend_schema_view(
    list=extend_schema(
        summary="Customers' predictions in the live run (most valuable first)",
        parameters=[
            OpenApiParameter(
                "churn_risk",
                str,
                description="Only these risk bands (low, medium, high; comma-separated).",
            ),
            OpenApiParameter("customer", int, description="Only this customer (by id)."),
            OpenApiParameter(
                UPDATED_SINCE,
                OpenApiTypes.DATETIME,
                description="Only customers changed at or after this time (ISO 8601): their "
                "prediction in a new run, or anything else about them.",
            ),
            OpenApiParameter(
                "ordering",
                str,
                description="One of " + ", ".join(CUSTOMER_ORDERING) + "; prefix - for "
                "descending. Default -predicted_clv_365d.",
            ),
        ],
    )
)
class CustomerPredictionViewSet(
    LiveRunListMixin, TenantViewSetMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    model = CustomerPrediction
    serializer_class = CustomerPredictionSerializer
    list_params = ("churn_risk", "customer", "ordering", UPDATED_SINCE)
    pagination_class = RunPagination

    def get_base_queryset(self):
        qs = super().get_base_queryset().filter(run__is_live=True, customer__erased_at__isnull=True)
        risks = _many(self.request, "churn_risk")
        unknown = [r for r in risks if r not in ChurnRisk.values]
        if unknown:
            raise ApplicationError(
                f"Unknown churn risk {', '.join(unknown)}: use low, medium or high.",
                {"fields": {"churn_risk": "Unknown value."}},
            )
        if risks:
            qs = qs.filter(churn_risk__in=risks)
        customer = self.request.query_params.get("customer")
        if customer:
            qs = qs.filter(customer_id=id_param(customer, "customer"))
        qs = updated_since_filter(self.request, qs, "customer__updated_at", customer="customer")
        ordering = _ordering(
            self.request.query_params.get("ordering"), CUSTOMER_ORDERING, "-predicted_clv_365d"
        )
        if ordering.lstrip("-") in ("propensity", "expected_next_order_at", "p_alive"):
            qs = qs.exclude(**{ordering.lstrip("-") + "__isnull": True})
        return qs.select_related("customer").order_by(ordering, "pk")


@extend_schema_view(
    list=extend_schema(
        summary="Product demand forecasts of the live run (most units first)",
        parameters=[
            OpenApiParameter("trend", str, enum=list(Trend.values), description="Only this trend."),
            OpenApiParameter("sku", str, description="Only this SKU."),
        ],
    ),
    retrieve=extend_schema(summary="One product forecast (also of an earlier run)"),
)
class ProductForecastViewSet(LiveRunListMixin, TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    model = ProductForecast
    serializer_class = ProductForecastSerializer
    list_params = ("trend", "sku")
    pagination_class = RunPagination

    def get_base_queryset(self):
        qs = super().get_base_queryset()
        if self.action != "list":
            return qs
        qs = qs.filter(run__is_live=True)
        trend = self.request.query_params.get("trend")
        if trend:
            if trend not in Trend.values:
                raise ApplicationError(
                    f"Unknown trend '{trend}': use {', '.join(Trend.values)}.",
                    {"fields": {"trend": "Unknown value."}},
                )
            qs = qs.filter(trend=trend)
        sku = self.request.query_params.get("sku")
        if sku:
            qs = qs.filter(sku=sku)
        return qs.order_by("-total_4w", "sku")


@extend_schema_view(
    list=extend_schema(summary="Prediction runs, newest first, with their back-tests"),
    retrieve=extend_schema(summary="One prediction run with everything it holds"),
    create=extend_schema(
        summary="Start a prediction run (a background job)",
        request=RunStartSerializer,
        responses={202: {"type": "object", "properties": {"job": {"type": "integer"}}}},
    ),
)
class PredictionRunViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    model = PredictionRun
    serializer_class = PredictionRunSerializer

    def get_base_queryset(self):
        return super().get_base_queryset().order_by("-created_at", "-id")

    def get_serializer_class(self):
        if self.action == "list":
            return PredictionRunListSerializer
        if self.action == "create":
            return RunStartSerializer
        return super().get_serializer_class()

    def create(self, request, *args, **kwargs):
        data = RunStartSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        job = services.prediction_run_start(
            organization=request.organization,
            user=_person(request),
            as_of=data.validated_data.get("as_of"),
        )
        return Response({"job": job.pk}, status=status.HTTP_202_ACCEPTED)


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("predictions/customers", CustomerPredictionViewSet, basename="customer-prediction")
router.register("predictions/products", ProductForecastViewSet, basename="product-forecast")
router.register("predictions/runs", PredictionRunViewSet, basename="prediction-run")

urlpatterns = [
    path("predictions/models/latest/", ModelLatestView.as_view(), name="prediction-model-latest"),
    path("predictions/settings/", SettingsView.as_view(), name="prediction-settings"),
    *router.urls,
]
