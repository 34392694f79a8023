"""Segments and personas API (CONTRACT.md): `segments/`, `segments/{id}/members/`,
`personas/`. Querysets come from the scoped managers, so another organisation's
ids answer 404."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from core.api.base import TenantViewSetMixin
from core.api.params import UPDATED_SINCE, check_list_params, updated_since_filter
from core.exceptions import ApplicationError
from customers.views import read_transaction

from ..models import Persona, Segment, SegmentationRun, SegmentKind
from ..selectors import MemberRows, segment_members, segment_members_run_id
from ..services.personas import persona_update
from ..services.rules import rule_preview, rule_segment_create
from .serializers_segments import (
    MemberSerializer,
    MembersPageSerializer,
    PersonaSerializer,
    PersonaUpdateSerializer,
    RuleSerializer,
    SegmentListSerializer,
    SegmentSerializer,
)

MEMBER_FIELDS = (
    "external_id",
    "email",
    "first_name",
    "last_name",
    "accepts_email",
    "accepts_sms",
    "email_consent_at",
    "sms_consent_at",
    "updated_at",
)


def _parent_filter(value: str) -> dict:
    if value.strip().lower() in ("none", "null"):
        return {"parent__isnull": True}
    try:
        parent_id = int(value)
    except ValueError:
        parent_id = -1
    if not 0 < parent_id < 2**63:
        raise ApplicationError(
            f"parent must be a segment id or 'none' (got {value[:40]!r}).",
            {"fields": {"parent": "Not a segment id."}},
        )
    return {"parent_id": parent_id}


@extend_schema_view(
    list=extend_schema(
        summary="Segments of the live run and rule segments",
        parameters=[
            OpenApiParameter(
                "kind", str, enum=["cluster", "rfm", "rule"], description="Only this kind."
            ),
            OpenApiParameter(
                "parent",
                str,
                description="Sub-segments of this segment id; `none` for top-level segments only.",
            ),
        ],
    ),
    retrieve=extend_schema(summary="One segment (also a retired one, for history)"),
)
class SegmentViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Segments found by machine learning (`cluster`), RFM groups (`rfm`) and the
    organisation's own rule segments (`rule`). A segment keeps its id across runs
    while it is the same group of customers."""

    model = Segment
    serializer_class = SegmentSerializer
    list_params = ("kind", "parent")

    def get_base_queryset(self):
        qs = (
            super()
            .get_base_queryset()
            .prefetch_related(Prefetch("personas", queryset=Persona.objects.all()))
        )
        if self.action == "list":
            qs = qs.filter(
                Q(kind__in=[SegmentKind.CLUSTER, SegmentKind.RFM], is_active=True)
                | Q(kind=SegmentKind.RULE)
            )
            kind = self.request.query_params.get("kind")
            if kind:
                qs = qs.filter(kind=kind)
            parent = self.request.query_params.get("parent")
            if parent:
                qs = qs.filter(**_parent_filter(parent))
        return qs.order_by("kind", "-size", "id")

    def get_serializer_class(self):
        if self.action == "list":
            return SegmentListSerializer
        return super().get_serializer_class()

    @read_transaction
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                UPDATED_SINCE,
                OpenApiTypes.DATETIME,
                description="Only members changed at or after this time (ISO 8601): their "
                "consent or data, or their segments or predictions in a new run.",
            )
        ],
        summary="Customers in the segment (paginated)",
        description="Each member with their consent, and `run`: the segmentation run the "
        "membership comes from (null for a rule segment, evaluated on the current data). "
        "Members come in id order.\n\n"
        "To read a big segment through, use `?cursor=` (empty for the first page, then "
        "follow `next`): each page starts after the last member of the one before, read "
        "from an index, so the thousandth page costs what the first does; no member comes "
        "twice, and none who stays in the segment during the read is skipped. Numbered "
        "pages (`?page=N`, with `count`) start from a count and page starts worked out "
        "at most five minutes ago (a rule segment's: a minute ago), so while the "
        "segment changes a numbered page may repeat or miss a member at its edges.",
        responses=MembersPageSerializer,
    )
    @action(detail=True, methods=["get"])
    @read_transaction
    def members(self, request, pk=None):
        check_list_params(request.query_params, (UPDATED_SINCE,))
        segment = self.get_object()
        rows: Any
        if request.query_params.get(UPDATED_SINCE):
            qs = segment_members(segment=segment).only("pk", *MEMBER_FIELDS)
            # members whose consent, data, segments or predictions changed since
            rows = updated_since_filter(request, qs)
        else:
            # every page starts at its place in an index (MemberRows): `?cursor=`
            # pages after the last member read, numbered pages from the cached
            # member index; a 500,000-member segment is never sorted or skipped over
            rows = MemberRows(segment)
        page = self.paginate_queryset(rows)
        response = self.get_paginated_response(MemberSerializer(page, many=True).data)
        run_id = segment_members_run_id(segment=segment)
        run = SegmentationRun.objects.filter(pk=run_id).first() if run_id else None
        response.data["run"] = (
            None
            if run is None
            else {"id": run.pk, "as_of": run.as_of, "created_at": run.created_at}
        )
        return response

    @extend_schema(
        summary="Create a rule segment",
        request=RuleSerializer,
        responses={201: SegmentSerializer},
    )
    @action(detail=False, methods=["post"], url_path="rules")
    def rules(self, request):
        data = RuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        segment = rule_segment_create(
            organization=request.organization,
            name=data.validated_data["name"],
            rule=data.validated_data["rule"],
            description=data.validated_data.get("description", ""),
            user=request.user,
        )
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Size of a rule before saving it",
        request={"application/json": {"type": "object"}},
        responses={200: {"type": "object"}},
    )
    @action(detail=False, methods=["post"], url_path="rules/preview")
    def rules_preview(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise ApplicationError(
                'The body must be a JSON object: {"rule": {...}} or the rule itself.',
                {"fields": {"body": "Not a JSON object."}},
            )
        return Response(rule_preview(rule=body.get("rule", body)))


@extend_schema_view(
    list=extend_schema(summary="Personas of the live segments"),
    retrieve=extend_schema(summary="One persona"),
    partial_update=extend_schema(
        summary="Edit a persona: edited fields are marked human and survive re-runs",
        request=PersonaUpdateSerializer,
        responses=PersonaSerializer,
    ),
)
class PersonaViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    model = Persona
    serializer_class = PersonaSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_base_queryset(self):
        qs = super().get_base_queryset().select_related("segment")
        if self.action == "list":
            qs = qs.filter(segment__is_active=True)
        return qs.order_by("segment__kind", "-segment__size", "id")

    def partial_update(self, request, *args, **kwargs):
        persona = self.get_object()
        data = PersonaUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        reset = fields.pop("reset_fields", None)
        persona = persona_update(
            persona=persona, data=fields, user=request.user, reset_fields=reset
        )
        return Response(PersonaSerializer(persona).data)


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("segments", SegmentViewSet, basename="segment")
router.register("personas", PersonaViewSet, basename="persona")

urlpatterns = router.urls
