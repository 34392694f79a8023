"""Feedback API (CONTRACT.md, "Research"): `GET feedback/`, `GET feedback/{id}/` and
`POST feedback/bulk/`.

The bulk write is the `feedback` file import's (customers.services.imports) through
the same machinery as `events/bulk/` (customers.api.views._bulk): same answer, same
pipeline refresh. Items name their customer as orders and events do: `customer` is
the API id, `customer_id` your own id. `sentiment` and `themes` come from the
research step (research.models.FeedbackInsight), null and [] until it has run.
Querysets come from the scoped manager, so another organisation's ids answer 404."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.routers import DefaultRouter
from rest_framework.viewsets import GenericViewSet

from customers.api.serializers import BulkResultSerializer
from customers.api.views import BULK_ANSWER, ScopedMixin, _bulk, _int, _when
from customers.models import Feedback

TAGS = ["feedback"]


class FeedbackItemSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(
        source="customer_id", read_only=True, allow_null=True, help_text="The customer's API id."
    )
    customer_id = serializers.SerializerMethodField(
        help_text="Your id for the customer (the file's `customer_id`), or null."
    )
    sentiment = serializers.SerializerMethodField(
        help_text="−1 (negative) to 1 (positive); null until the research step has read it."
    )
    themes = serializers.SerializerMethodField(help_text="Ids of the themes it belongs to.")

    class Meta:
        model = Feedback
        fields = [
            "id",
            "external_id",
            "customer",
            "customer_id",
            "created_at",
            "source",
            "rating",
            "text",
            "sentiment",
            "themes",
            "properties",
        ]
        read_only_fields = fields

    @staticmethod
    def _insight(obj):
        try:
            return obj.insight
        except Feedback.insight.RelatedObjectDoesNotExist:
            return None

    def get_customer_id(self, obj) -> str | None:
        return obj.customer.external_id if obj.customer_id else None

    def get_sentiment(self, obj) -> float | None:
        insight = self._insight(obj)
        return insight.sentiment if insight else None

    def get_themes(self, obj) -> list[int]:
        insight = self._insight(obj)
        return [insight.theme_id] if insight and insight.theme_id else []


class FeedbackRecordSerializer(serializers.Serializer):
    """One record of `feedback/bulk/`: the feedback file's columns."""

    feedback_id = serializers.CharField(
        required=False, help_text="Your id; without it, the record's content is its key."
    )
    customer_id = serializers.CharField(required=False)
    email = serializers.CharField(required=False)
    created_at = serializers.DateTimeField()
    source = serializers.CharField(  # type: ignore[assignment]  # a field named like Field.source
        required=False, help_text="review, survey, support, ..."
    )
    rating = serializers.JSONField(
        required=False,
        help_text='A number; "4/5", "4 stars" and "★★★★" read as 4; a value that is not a '
        'number ("n/a", "-", "five") is kept as no rating.',
    )
    text = serializers.CharField(required=False, help_text="Required when there is no rating.")
    properties = serializers.DictField(required=False)


BULK_EXAMPLE = [
    {
        "feedback_id": "R-981",
        "customer_id": "C1001",
        "created_at": "2026-11-21T08:15:00Z",
        "source": "review",
        "rating": 2,
        "text": "Lovely mug, but delivery took two weeks.",
    },
    {
        "customer_id": "C1002",
        "created_at": "2026-11-22",
        "source": "support",
        "rating": "n/a",
        "text": "Where is my parcel?",
        "properties": {"ticket": "T-77"},
    },
]


@extend_schema_view(
    list=extend_schema(
        tags=TAGS,
        summary="List feedback",
        description="Reviews, survey answers and support messages, newest first.",
        parameters=[
            OpenApiParameter("customer", int, description="Customer id (the API's `id`)."),
            OpenApiParameter("customer_id", str, description="Your id for the customer."),
            OpenApiParameter("source", str, description="review, survey, support, ... (exact)."),
            OpenApiParameter("theme", int, description="Theme id (research/themes/)."),
            OpenApiParameter(
                "since",
                OpenApiTypes.DATETIME,
                description="Given at or after this date or time (ISO 8601; without a "
                "zone, the organisation's).",
            ),
        ],
    ),
    retrieve=extend_schema(tags=TAGS, summary="One feedback item"),
)
class FeedbackViewSet(
    ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet
):
    """Feedback from every source, with its sentiment and themes."""

    model = Feedback  # type: ignore[assignment]  # the mixin declares it None
    serializer_class = FeedbackItemSerializer
    lookup_value_regex = r"\d+"
    list_params = ("customer", "customer_id", "source", "theme", "since")

    def get_queryset(self):
        qs = self.get_base_queryset().select_related("customer", "insight")
        p = self.request.query_params
        if self.action == "list":
            if p.get("customer"):
                qs = qs.filter(customer_id=_int(p["customer"], "customer"))
            if p.get("customer_id"):
                qs = qs.filter(customer__external_id=p["customer_id"])
            if p.get("source"):
                qs = qs.filter(source=p["source"])
            if p.get("theme"):
                qs = qs.filter(insight__theme_id=_int(p["theme"], "theme"))
            if p.get("since"):
                qs = qs.filter(created_at__gte=_when(self.request, "since"))
            qs = qs.order_by("-created_at", "-pk")
        return qs

    @extend_schema(
        tags=TAGS,
        summary="Upsert feedback",
        request=FeedbackRecordSerializer(many=True),
        responses={
            200: BulkResultSerializer,
            400: OpenApiResponse(description="Not a list of objects, or more than 1,000."),
        },
        examples=[
            OpenApiExample(
                "Two feedback items",
                value=BULK_EXAMPLE,
                description="Keyed by `feedback_id` (or, without one, by the record's "
                "content); sending it again changes nothing. The second has no rating.",
                request_only=True,
            ),
            OpenApiExample(
                "One stored, one rejected",
                value=BULK_ANSWER,
                description="Valid records are stored even when others are rejected; `jobs` "
                "are the refreshes this write started (follow them at jobs/{id}/).",
                response_only=True,
                status_codes=["200"],
            ),
        ],
        description="Upsert up to 1,000 feedback items with the feedback file's column names "
        "(`feedback_id`, `customer_id`, `created_at`, `source`, `rating`, `text`; other keys "
        "go in `properties`). Valid records are stored even when others are rejected; each "
        "rejection names the record's index (0-based), field and reason. A rating that is "
        "not a number is kept as no rating. Sending the same records again changes nothing.",
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        return _bulk(request, "feedback")


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("feedback", FeedbackViewSet, basename="feedback")

urlpatterns = router.urls
