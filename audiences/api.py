"""Audiences API (CONTRACT.md, "Recommendations and audiences"): `audiences/`,
`audiences/preview/`, `audiences/preview/{job_id}/`, `audiences/{id}/`,
`audiences/{id}/members/`, `audiences/{id}/export.csv` and `audiences/{id}/rebuild/`.
Querysets come from the scoped managers, so another organisation's ids answer 404."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.urls import path, reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from core.api.base import TenantViewSetMixin
from core.csvstream import csv_response
from customers.views import read_transaction

from . import selectors, services
from .models import Audience

TAGS = ["audiences"]


class AudienceSerializer(serializers.ModelSerializer):
    reachable = serializers.SerializerMethodField()
    job = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Audience
        fields = [
            "id",
            "name",
            "definition",
            "status",
            "message",
            "job",
            "refreshed_at",
            "size",
            "candidates",
            "reachable",
            "expected_conversions",
            "unplaced",
            "best_channel",
            "model",
            "fairness",
            "notes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_reachable(self, obj) -> dict:
        return {"email": obj.reachable_email, "sms": obj.reachable_sms}


class AudienceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    definition = serializers.JSONField(
        required=False,
        help_text="{kind, ...}: segments, rules, goal, response, lookalike or location "
        "(CONTRACT.md lists their fields).",
    )


class PreviewSerializer(serializers.Serializer):
    definition = serializers.JSONField(help_text="An audience definition (not saved).")


class PreviewRunningSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["queued", "running"], help_text="The preview job's state."
    )
    job = serializers.IntegerField(help_text="The preview job (also at `jobs/{id}/`).")
    progress = serializers.IntegerField(help_text="0-100.")
    message = serializers.CharField(help_text="What it is doing now, in words.")
    poll = serializers.URLField(
        help_text="Where to ask again (`GET audiences/preview/{job_id}/`); also the "
        "`Location` header."
    )


PREVIEW_FIGURES = (
    "`{size, candidates, reachable: {email, sms}, expected_conversions, model, fairness, "
    "best_channel, unplaced, notes, definition, estimated, sample_size, estimate}`"
)


def _preview_running(request, job) -> Response:
    poll = request.build_absolute_uri(reverse("audience-preview-job", kwargs={"job_id": job.pk}))
    return Response(
        {
            "status": job.status,
            "job": job.pk,
            "progress": job.progress,
            "message": job.message,
            "poll": poll,
        },
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": poll, "Retry-After": "1"},
    )


def _prefers_async(request) -> bool:
    """`Prefer: respond-async` (RFC 7240): answer 202 at once instead of waiting."""
    prefer = request.headers.get("Prefer", "")
    return any(p.strip().lower() == "respond-async" for p in prefer.split(","))


# The deprecated wait reads the job's row after 0.1 s, then twice as long each time up
# to a read a second: a quick preview is still answered within a tenth of a second
# of finishing, and one that takes the whole 30 s costs about 33 reads, not 150.
WAIT_FIRST_NAP = 0.1
WAIT_LONGEST_NAP = 1.0


def _naps(seconds: float) -> Iterator[float]:
    """The pauses between reads of a job waited for `seconds` at most: 0.1 s doubling
    to 1 s, the last one cut short at the deadline."""
    import time

    deadline = time.monotonic() + max(seconds, 0)
    nap = WAIT_FIRST_NAP
    while (left := deadline - time.monotonic()) > 0:
        yield min(nap, left)
        nap = min(nap * 2, WAIT_LONGEST_NAP)


def _wait_for(job, seconds: float):
    """The job once it has finished, or as it stands after `seconds` (the work runs
    in a worker; this request only reads the job's row, less often the longer it
    waits: `_naps`). Integrations written before previews became jobs read 200 with
    the figures from this call, so it waits for them unless they ask for
    `Prefer: respond-async` (deprecated: docs/api-changelog.md)."""
    import time

    from core.models import Job

    for nap in _naps(seconds):
        if job.is_finished:
            break
        time.sleep(nap)
        job = Job.objects.get(pk=job.pk)
    return job


def _preview_job_answer(request, job) -> Response:
    """A preview job as the API answers it: 202 while it works, the figures once it
    succeeded, or the error the preview gives (its reason in the data, or why it
    stopped)."""
    problem = services.preview_job_problem(job)
    if problem is not None:
        raise problem
    if not job.is_finished:
        return _preview_running(request, job)
    return Response({**services.preview_job_figures(job), "status": job.status, "job": job.pk})


class AudienceMemberSerializer(serializers.Serializer):
    customer = serializers.SerializerMethodField()
    score = serializers.FloatField(allow_null=True)
    rank = serializers.IntegerField()

    def get_customer(self, obj) -> dict:
        return {"id": obj.customer_id, "external_id": obj.customer.external_id}


def _problem(serializer_errors) -> None:
    from core.exceptions import ApplicationError

    fields = {k: " ".join(str(m) for m in v) for k, v in serializer_errors.items()}
    raise ApplicationError("The request is not valid: " + "; ".join(fields), {"fields": fields})


@extend_schema_view(
    list=extend_schema(summary="List audiences", tags=TAGS),
    retrieve=extend_schema(summary="One audience with its figures", tags=TAGS),
    destroy=extend_schema(summary="Delete an audience", tags=TAGS),
)
class AudienceViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Saved, named lists of customers that campaigns send to."""

    model = Audience
    serializer_class = AudienceSerializer
    list_params = ()

    @extend_schema(
        summary="Save an audience",
        description="201 with `status` `building` and the `job` that builds it; the figures "
        "fill in when the job finishes. Sensitive columns stay out of its model unless the "
        "definition says `use_sensitive: true` with a `reason` (recorded in the audit log).",
        request=AudienceWriteSerializer,
        responses={201: AudienceSerializer},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        data = AudienceWriteSerializer(data=request.data)
        if not data.is_valid():
            _problem(data.errors)
        audience = services.audience_create(
            organization=request.organization,
            name=data.validated_data.get("name"),
            definition=data.validated_data.get("definition"),
            user=request.user,
            request=request,
        )
        return Response(AudienceSerializer(audience).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename or redefine an audience",
        description="A new definition rebuilds the audience (status `building`, then "
        "`refreshed_at` moves on).",
        request=AudienceWriteSerializer,
        responses={200: AudienceSerializer},
        tags=TAGS,
    )
    def partial_update(self, request, *args, **kwargs):
        audience = self.get_object()
        data = AudienceWriteSerializer(data=request.data, partial=True)
        if not data.is_valid():
            _problem(data.errors)
        audience = services.audience_update(
            organization=request.organization,
            audience=audience,
            name=data.validated_data.get("name"),
            definition=data.validated_data.get("definition"),
            user=request.user,
            request=request,
        )
        return Response(AudienceSerializer(audience).data)

    def perform_destroy(self, instance):
        services.audience_delete(organization=self.request.organization, audience=instance)

    @extend_schema(
        summary="What an audience would be, without saving it",
        request=PreviewSerializer,
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The figures, worked out in the request (the kinds that need no model).",
            ),
            202: OpenApiResponse(
                PreviewRunningSerializer,
                description="A kind that fits a model: the preview is being worked out by a "
                "job; ask `poll` for it.",
            ),
        },
        description=f"200 {PREVIEW_FIGURES} for the kinds that need no model (`segments`, `rules`, "
        "`location`, and the `goal`s `order_soon` and `high_value_at_risk`, read off the "
        "predictions). The kinds that fit a model (`response`, `lookalike`, and the `goal` "
        "`buy_category`) take seconds, so they are worked out by a background job. With "
        "the header `Prefer: respond-async` (what new integrations should send) the "
        "answer is 202 `{status: queued|running, job, progress, message, poll}` at once, "
        "with `poll` (also the `Location` header) the address to ask with "
        "`GET audiences/preview/{job_id}/` until it answers the figures. Without it the "
        "call waits for the job up to `AUDIENCE_PREVIEW_API_WAIT_SECONDS` (30 s) and "
        "answers 200 with the figures (plus `status` and `job`), as it did before "
        "previews were jobs, or 202 as above if the job is still working then; this "
        "waiting is deprecated and ends on 2027-06-01. The same "
        "definition asked for again within ten minutes while the customers are unchanged "
        "answers from the same job. On an organisation of more customers than "
        "`AUDIENCE_PREVIEW_SAMPLE_ABOVE` the figures are estimates from a random sample: "
        "`estimated` is true, `sample_size` the customers in the sample, and `estimate` "
        "lists the counts scaled up to everyone (`scaled`) and the figures worked out on "
        "the sample as they stand (`from_sample`: fairness shares and ratios, the best "
        "channel's rates, the model). Otherwise `estimated` is false and `sample_size` and "
        "`estimate` are null. A saved audience always counts everyone.",
        tags=TAGS,
    )
    @action(detail=False, methods=["post"])
    def preview(self, request):
        data = PreviewSerializer(data=request.data)
        if not data.is_valid():
            _problem(data.errors)
        answer = services.audience_preview_request(
            organization=request.organization,
            definition=data.validated_data["definition"],
            user=request.user,
        )
        if answer.job is not None:
            job = answer.job
            if not _prefers_async(request):
                job = _wait_for(job, settings.AUDIENCE_PREVIEW_API_WAIT_SECONDS)
            return _preview_job_answer(request, job)
        figures = dict(answer.figures or {})
        figures.pop("sample", None)
        return Response(figures)

    @extend_schema(
        summary="A preview being worked out by a job",
        request=None,
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The job has finished: the preview's figures, as the other kinds "
                "answer them, with `status` `succeeded` and `job`.",
            ),
            202: OpenApiResponse(
                PreviewRunningSerializer, description="Still being worked out: ask again."
            ),
        },
        description=f"The preview started by `POST audiences/preview/` for a kind that fits "
        f"a model. 202 `{{status, job, progress, message, poll}}` while the job is queued or "
        f"running; 200 {PREVIEW_FIGURES} plus `status` and `job` once it has succeeded. A "
        "reason in the data (too few responders, an unknown category) answers the error the "
        "preview gives, naming the field (400, or 409 `no_model`); a preview stopped "
        "before it finished answers 409 `preview_cancelled`, one that failed on our side "
        "or ran out of time 409 `preview_failed` or `preview_too_long` (ask for it again). "
        "Another organisation's job, or a job that is not a preview, answers 404.",
        tags=TAGS,
    )
    @action(
        detail=False,
        methods=["get"],
        url_path=r"preview/(?P<job_id>[0-9]+)",
        url_name="preview-job",
    )
    def preview_job(self, request, job_id=None):
        job = services.preview_job_get(job_id=int(job_id))
        return _preview_job_answer(request, job)

    @extend_schema(
        summary="An audience's members, best first",
        responses=AudienceMemberSerializer(many=True),
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    @read_transaction
    def members(self, request, pk=None):
        from core.api.pagination import CURSOR
        from core.api.params import check_list_params

        check_list_params(request.query_params, ())
        audience = self.get_object()
        if CURSOR in request.query_params:
            rows = selectors.audience_members(audience=audience)
        else:
            rows = MemberRows(audience)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AudienceMemberSerializer(page, many=True).data)

    @extend_schema(
        summary="Rebuild an audience now",
        request=None,
        responses={202: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        job = services.audience_rebuild(
            organization=request.organization, audience=self.get_object(), user=request.user
        )
        return Response({"job": job.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="An audience's members as CSV (formula-safe cells)",
        responses={(200, "text/csv"): OpenApiTypes.STR},
        tags=TAGS,
    )
    def export(self, request, pk=None):
        audience = self.get_object()
        return audience_csv(audience)


class MemberRows:
    """An audience's members, best first, as a sequence page numbers can page: the
    count is cached per build (members change only when it is rebuilt, or when an
    erasure removes someone, which deletes the member row), and a page is an offset
    into the (organisation, audience, rank) index, then only its customers are read.
    So a 500,000-member audience is neither counted nor joined on every page."""

    COUNT_TIMEOUT = 300

    def __init__(self, audience: Audience):
        self.audience = audience

    def count(self) -> int:
        from django.core.cache import cache

        from .models import AudienceMember

        built = self.audience.refreshed_at.isoformat() if self.audience.refreshed_at else "-"
        key = (
            f"audiences:member_count:{self.audience.pk}:{built}:{self.audience.status}"
            f":org_{self.audience.organization_id}"
        )
        value = cache.get(key)
        if value is None:
            value = AudienceMember.objects.filter(
                audience=self.audience, customer__erased_at__isnull=True
            ).count()
            cache.set(key, value, self.COUNT_TIMEOUT)
        return value

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        from .models import AudienceMember

        if not isinstance(index, slice):
            raise TypeError("MemberRows pages by slices")
        ids = list(
            AudienceMember.objects.filter(audience=self.audience)
            .order_by("rank", "id")
            .values_list("id", flat=True)[index]
        )
        found = (
            AudienceMember.objects.filter(pk__in=ids, customer__erased_at__isnull=True)
            .select_related("customer")
            .in_bulk()
        )
        return [found[i] for i in ids if i in found]


def audience_csv(audience: Audience):
    """The members file the site and the API both give."""
    members = selectors.audience_members(audience=audience).values_list(
        "rank", "customer__external_id", "customer__email", "customer__first_name",
        "customer__last_name", "customer__accepts_email", "customer__accepts_sms", "score",
    )  # fmt: skip
    header = ["rank", "customer_id", "email", "first_name", "last_name", "accepts_email",
              "accepts_sms", "score", "audience"]  # fmt: skip

    def rows():
        for row in members.iterator(chunk_size=2000):
            yield [*row, audience.name]

    return csv_response(f"audience-{audience.pk}-{timezone.now():%Y%m%d}.csv", header, rows())


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("audiences", AudienceViewSet, basename="audience")
urlpatterns = [
    # the contract's name has no trailing slash (a file)
    path(
        "audiences/<int:pk>/export.csv",
        AudienceViewSet.as_view({"get": "export"}),
        name="audience-export",
    ),
    *router.urls,
]
