"""Surveys API (CONTRACT.md, "Research"): `surveys/` (list with each `public_url`,
create), `surveys/{id}/` (read, change), `surveys/{id}/results/` and
`surveys/{id}/responses/` (record an answer set gathered elsewhere). Querysets come
from the scoped manager, so another organisation's ids answer 404; writes need a
write key (or a marketer's session). The rules and their messages are
research/surveys.py's."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from core.api.base import TenantViewSetMixin
from core.api.params import valid_body
from core.exceptions import ApplicationError

from . import links, surveys
from .models import ResponseChannel, Survey

TAGS = ["surveys"]


class SurveyQuestionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["rating", "nps", "choice", "text"])
    text = serializers.CharField()
    options = serializers.ListField(child=serializers.CharField(), required=False)
    required = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]


class SurveySerializer(serializers.ModelSerializer):
    questions = SurveyQuestionSerializer(many=True, read_only=True)
    public_url = serializers.SerializerMethodField(
        help_text="The anonymous link anyone can answer through."
    )
    responses = serializers.IntegerField(source="responses_count", read_only=True, default=0)

    class Meta:
        model = Survey
        fields = [
            "id", "name", "intro", "thank_you", "questions", "status", "personal_links",
            "public_url", "responses", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_public_url(self, obj) -> str:
        return links.public_url(obj)


class SurveyWriteSerializer(serializers.Serializer):
    """Shape only; the rules (and their messages naming the question) are in surveys.py."""

    name = serializers.JSONField(required=False)
    intro = serializers.JSONField(required=False)
    thank_you = serializers.JSONField(required=False)
    questions = serializers.JSONField(
        required=False,
        help_text='1 to 20 of {"type": "rating"|"nps"|"choice"|"text", "text", "options"? '
        '(choice: 2 to 20), "required"? (default false)}. Their type, options and order are '
        "fixed once the survey has answers (409).",
    )
    personal_links = serializers.JSONField(
        required=False,
        help_text='"edit" (default: a second answer through one personal link replaces the '
        'first) or "once" (it is refused).',
    )
    status = serializers.JSONField(required=False, help_text='"open" or "closed".')


class SurveyResponseWriteSerializer(serializers.Serializer):
    customer_id = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Your id for the customer (their `customer_id`); leave out for an anonymous "
        "answer.",
    )
    answers = serializers.JSONField(
        help_text="One value per question, in order (null for one left blank): rating 1–5, "
        "nps 0–10, choice one of its options, text up to 2,000 characters."
    )


class SurveyResponseCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    survey_id = serializers.IntegerField()
    customer_id = serializers.CharField(allow_null=True)
    channel = serializers.CharField()
    answers = serializers.JSONField()
    created_at = serializers.DateTimeField()


def _valid(serializer_class, request, **kwargs) -> dict:
    return valid_body(serializer_class, request, given_only=True, **kwargs)


def _customer(external_id: str, organization):
    from customers.models import Customer
    from customers.services.identity import erased_external_ids

    value = (external_id or "").strip()
    if surveys.unstorable(value):
        message = f"customer_id {surveys.unstorable(value)}."
        raise ApplicationError(message, {"fields": {"customer_id": message}})
    customer = (
        Customer.objects.filter(external_id=value).first()
        or Customer.objects.filter(external_id__iexact=value).first()
    )
    if customer is None:
        if Customer.objects.filter(
            external_id__in=erased_external_ids(organization.pk, value)
        ).exists():
            customer = None
            erased = True
        else:
            raise ApplicationError(
                f"customer_id {value!r} names no customer of yours.",
                {"fields": {"customer_id": "No customer has this id."}},
            )
    else:
        erased = customer.erased_at is not None
    if erased:
        raise ApplicationError(
            "customer_id names a customer who was erased; their answers are not recorded.",
            {"fields": {"customer_id": "This customer was erased."}},
        )
    return customer


@extend_schema_view(
    list=extend_schema(summary="List surveys, each with its public link", tags=TAGS),
    retrieve=extend_schema(summary="One survey", tags=TAGS),
)
class SurveyViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Short surveys with a public link and personal links sent in campaigns."""

    model = Survey  # type: ignore[assignment]
    serializer_class = SurveySerializer
    lookup_value_regex = r"\d+"
    list_params = ()

    def get_base_queryset(self):
        from django.db.models import Count

        return (
            super()
            .get_base_queryset()
            .annotate(responses_count=Count("responses"))
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        summary="Create a survey",
        description='`{"name", "questions": [...], "intro"?, "thank_you"?, "personal_links"?}`; '
        "a bad question answers 400 naming its number and field.",
        request=SurveyWriteSerializer,
        responses={201: SurveySerializer},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        data = _valid(SurveyWriteSerializer, request)
        survey = surveys.survey_create(
            organization=request.organization, data=data, actor=request.user
        )
        survey = self.get_queryset().get(pk=survey.pk)
        return Response(SurveySerializer(survey).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a survey",
        description="The name, texts, personal-link behaviour and status can always change; "
        "the questions' type, options and order answer 409 once the survey has answers.",
        request=SurveyWriteSerializer,
        responses={200: SurveySerializer},
        tags=TAGS,
    )
    def partial_update(self, request, *args, **kwargs):
        survey = self.get_object()
        data = _valid(SurveyWriteSerializer, request, partial=True)
        surveys.survey_update(survey=survey, data=data, actor=request.user)
        return Response(SurveySerializer(self.get_queryset().get(pk=survey.pk)).data)

    @extend_schema(
        summary="A survey's results",
        description='`{"responses", "response_rate", "nps", "questions": [{"index", "type", '
        '"text", "answered", "distribution"?, "mean"?, "nps"?, "count"?, "themes"?, '
        '"texts"?}], "by_segment": [{"segment_id", "name", "responses", "nps"}]}`. NPS = % '
        "answering 9–10 − % answering 0–6 (null with no answers); `response_rate` is null "
        "until a campaign carrying the survey was sent.",
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        return Response(surveys.survey_results(self.get_object()))

    @extend_schema(
        summary="Record an answer set gathered elsewhere",
        description="A till, a form tool: 201 with the stored answers. With `customer_id` "
        "the answer is tied to that customer (a `survey_answered` event and, for text or a "
        "rating, a feedback item); an unknown or erased customer answers 400.",
        request=SurveyResponseWriteSerializer,
        responses={201: SurveyResponseCreatedSerializer},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def responses(self, request, pk=None):
        survey = self.get_object()
        data = _valid(SurveyResponseWriteSerializer, request)
        customer = None
        if data.get("customer_id"):
            customer = _customer(data["customer_id"], request.organization)
        response = surveys.record_response(
            survey=survey,
            answers=data.get("answers"),
            channel=ResponseChannel.API,
            customer=customer,
        )
        body = {
            "id": response.pk,
            "survey_id": survey.pk,
            "customer_id": customer.external_id if customer is not None else None,
            "channel": response.channel,
            "answers": response.answers,
            "created_at": response.created_at,
        }
        return Response(SurveyResponseCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("surveys", SurveyViewSet, basename="survey")
urlpatterns = router.urls
