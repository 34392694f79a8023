"""Campaigns API (CONTRACT.md, "Campaigns, offers and loyalty"): `campaigns/`,
`campaigns/{id}/`, `campaigns/{id}/variants/`, `campaigns/{id}/preview/`,
`campaigns/{id}/test/`, `campaigns/{id}/send/`, `campaigns/{id}/stats/`,
`campaigns/{id}/audit/` and `campaigns/settings/`. Querysets come from the scoped
managers, so another organisation's ids answer 404."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from core.api.base import TenantViewSetMixin
from core.api.params import valid_body
from core.exceptions import ApplicationError

from . import rules, sending, services, stats
from .api_automations import urlpatterns as automation_urls
from .models import Campaign, CampaignSettings, Variant

TAGS = ["campaigns"]


class VariantSerializer(serializers.ModelSerializer):
    persona_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Variant
        fields = [
            "id", "name", "subject", "body", "segment_ids", "persona_id", "share", "is_draft",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class CampaignSerializer(serializers.ModelSerializer):
    audience_id = serializers.IntegerField(read_only=True, allow_null=True)
    survey_id = serializers.IntegerField(read_only=True, allow_null=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    schedule = serializers.SerializerMethodField()
    variants = serializers.SerializerMethodField()
    notice = serializers.SerializerMethodField(
        help_text="Why its messages wait, or null: `{code: organization_suspended, message}`, "
        "or `{code: limit_reached, message, limit: emails_per_day, value, waiting, until}` "
        "when the organisation's emails of the day ran out (the rest go from `until`, the "
        "start of the next UTC day)."
    )

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "channel", "goal", "status", "message", "notice", "segment_ids",
            "audience_id",
            "subject", "body", "schedule", "holdout_share", "allocation",
            "conversion_window_days", "offer_id", "survey_id", "plan", "counts", "job",
            "variants", "created_at", "updated_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_schedule(self, obj) -> dict | None:
        if obj.best_hour:
            return {"best_hour": True}
        if obj.send_at:
            return {"at": obj.send_at.isoformat()}
        return None

    def get_notice(self, obj) -> dict | None:
        request = self.context.get("request")
        return rules.campaign_notice(obj, getattr(request, "organization", None))

    def get_variants(self, obj) -> list[dict]:
        variants = sorted(obj.variants.all(), key=lambda v: (v.created_at, v.pk))  # prefetched
        return VariantSerializer(variants, many=True).data


class CampaignWriteSerializer(serializers.Serializer):
    """Shape only; the rules (and their messages naming the field) are in services."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    channel = serializers.CharField(required=False)
    goal = serializers.CharField(required=False, allow_blank=True)
    segment_ids = serializers.JSONField(required=False)
    audience_id = serializers.JSONField(required=False)
    subject = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    schedule = serializers.JSONField(
        required=False, allow_null=True, help_text='{"at": ISO time}, "best_hour" or null (now)'
    )
    best_hour = serializers.BooleanField(required=False)
    holdout_share = serializers.JSONField(required=False)
    allocation = serializers.CharField(required=False)
    conversion_window_days = serializers.JSONField(required=False)
    offer_id = serializers.JSONField(required=False, allow_null=True)
    survey_id = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="An open survey of the organisation, or null. The message must then hold "
        "{{ survey_link }} (each customer's own link to it).",
    )


class VariantWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    subject = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    segment_ids = serializers.JSONField(required=False)
    persona_id = serializers.JSONField(required=False, allow_null=True)
    share = serializers.JSONField(required=False, allow_null=True)
    draft = serializers.BooleanField(
        required=False, help_text="Write a starter draft from the persona (marked as a draft)."
    )


class CampaignSendSerializer(serializers.Serializer):
    fairness_override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Why the campaign's offer may be sent although the fairness check "
        "flagged it (recorded on the offer and in the audit log before the send starts).",
    )


class TestSendSerializer(serializers.Serializer):
    to = serializers.CharField(required=False, allow_blank=True)


class CampaignSettingsSerializer(serializers.ModelSerializer):
    reply_to = serializers.CharField(read_only=True, help_text="An email address, or empty.")

    class Meta:
        model = CampaignSettings
        fields = [
            "cap_messages", "cap_days", "quiet_start_hour", "quiet_end_hour", "from_name",
            "reply_to", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SettingsWriteSerializer(serializers.Serializer):
    cap_messages = serializers.JSONField(required=False, allow_null=True)
    cap_days = serializers.JSONField(required=False, allow_null=True)
    quiet_start_hour = serializers.JSONField(required=False)
    quiet_end_hour = serializers.JSONField(required=False)
    from_name = serializers.CharField(required=False, allow_blank=True)
    reply_to = serializers.CharField(required=False, allow_blank=True)


def _valid(serializer_class, request, **kwargs) -> dict:
    out = valid_body(serializer_class, request, **kwargs)
    if out.pop("best_hour", False):
        out["schedule"] = "best_hour"
    return out


@extend_schema_view(
    list=extend_schema(summary="List campaigns", tags=TAGS),
    retrieve=extend_schema(summary="One campaign", tags=TAGS),
    destroy=extend_schema(summary="Delete a campaign (only while draft or scheduled)", tags=TAGS),
)
class CampaignViewSet(
    TenantViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Personalised email and SMS to segments or an audience."""

    model = Campaign
    serializer_class = CampaignSerializer
    lookup_value_regex = r"\d+"
    list_params = ()

    def get_base_queryset(self):
        # an automation's own campaigns are shown with the automation (api_automations)
        return (
            super().get_base_queryset().filter(automation__isnull=True).prefetch_related("variants")
        )

    @extend_schema(
        summary="Create a campaign",
        request=CampaignWriteSerializer,
        responses={201: CampaignSerializer},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        data = _valid(CampaignWriteSerializer, request)
        campaign = services.campaign_create(
            organization=request.organization, data=data, user=request.user
        )
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a campaign (only while draft or scheduled; else 409)",
        request=CampaignWriteSerializer,
        responses={200: CampaignSerializer},
        tags=TAGS,
    )
    def partial_update(self, request, *args, **kwargs):
        campaign = self.get_object()
        data = _valid(CampaignWriteSerializer, request, partial=True)
        campaign = services.campaign_update(
            organization=request.organization, campaign=campaign, data=data
        )
        return Response(CampaignSerializer(campaign).data)

    def perform_destroy(self, instance):
        services.campaign_delete(organization=self.request.organization, campaign=instance)

    @extend_schema(
        summary="Add a variant (for segments, a persona, or an A/B arm)",
        description="A customer matching two variants gets the first created. "
        '`"draft": true` with a `persona_id` writes a starter draft from the persona.',
        request=VariantWriteSerializer,
        responses={201: VariantSerializer},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def variants(self, request, pk=None):
        campaign = self.get_object()
        data = _valid(VariantWriteSerializer, request)
        variant = services.variant_create(
            organization=request.organization, campaign=campaign, data=data, user=request.user
        )
        return Response(VariantSerializer(variant).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The message as one customer would get it",
        parameters=[
            OpenApiParameter("customer", int, required=True, description="A customer id."),
            OpenApiParameter("variant", int, required=False, description="A variant id."),
        ],
        responses={200: OpenApiTypes.OBJECT},
        description='`{"subject", "html", "text", "variant"}`; links are not tracked.',
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        from core.api.params import check_list_params

        check_list_params(request.query_params, ("customer", "variant"))
        campaign = self.get_object()
        customer = services.preview_customer(
            campaign=campaign, customer_id=request.query_params.get("customer")
        )
        variant_id = request.query_params.get("variant")
        if variant_id is not None:
            if not variant_id.isdigit() or not campaign.variants.filter(pk=variant_id).exists():
                raise ApplicationError(
                    "No such variant in this campaign.",
                    {"fields": {"variant": "No such variant in this campaign."}},
                )
            variant_id = int(variant_id)
        return Response(
            sending.preview(campaign=campaign, customer=customer, variant_id=variant_id)
        )

    @extend_schema(
        summary="Send a test copy to a member of the organisation",
        request=TestSendSerializer,
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        campaign = self.get_object()
        data = _valid(TestSendSerializer, request)
        done = services.campaign_test_send(
            organization=request.organization, campaign=campaign, to=data.get("to"),
            user=request.user,
        )  # fmt: skip
        return Response(done)

    @extend_schema(
        summary="Who a send would reach now, and who would be skipped and why",
        description="Counts by reason (with an offer: `skipped_offer_holdout`, "
        "`skipped_no_offer_code`), the A/B `plan`, and `offer`: null, or `{id, name, "
        "status, recipients, holdout, with_code, fairness_flagged, override_reason, "
        "fairness, problem}` (`problem`: why it cannot be sent now, or null).",
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def audit(self, request, pk=None):
        return Response(services.campaign_audit(self.get_object()))

    @extend_schema(
        summary="Send the campaign (or schedule it when its time is ahead)",
        description='202 `{"job": id}` (`job` null and `status` `scheduled` when `send_at` '
        "is ahead); 409 naming the job when a send is already running; only customers "
        "who consented to the channel, never the same campaign twice to the same person. "
        "A campaign carrying an offer goes only to customers given a code, and is refused "
        "(409 `offer_not_sendable`, or `offer_flagged` when the fairness check flagged "
        "the offer) while the offer cannot be sent; `fairness_override_reason` records "
        "why a flagged offer may be sent anyway (audited), then sends. A campaign carrying "
        "a survey is refused (409 `survey_not_sendable`) while the survey is closed or "
        "deleted, and (400 naming `body`) when a version leaves out `{{ survey_link }}`. "
        "An email send started when the organisation's `emails_per_day` are used up "
        "still starts (202) and its messages wait until the next UTC day; the answer "
        "then carries `notice` `{code: limit_reached, message, limit, value}`.",
        request=CampaignSendSerializer,
        responses={202: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        campaign = self.get_object()
        data = _valid(CampaignSendSerializer, request)
        job = services.campaign_send(
            organization=request.organization, campaign=campaign, user=request.user,
            fairness_override_reason=data.get("fairness_override_reason"), request=request,
        )  # fmt: skip
        body = {"job": job.pk if job else None, "status": campaign.status}
        if job is not None:
            # started with the day's emails used up: it waits until tomorrow, and says so
            notice = rules.start_notice(request.organization, campaign)
            if notice:
                body["notice"] = notice
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="A campaign's results",
        responses={200: OpenApiTypes.OBJECT},
        description="Totals, per variant with a 95% Wilson interval, by segment and "
        "persona, the hold-out's conversion rate and incremental revenue, and `winner` "
        "(null until the planned sample size is reached and the difference is "
        "significant at 0.05). `by_store`: `[{store_id, store, sent, converted, revenue, "
        "conversion_rate}]`, each customer sent to counted at their nearest store "
        "(`store_id` null for those who could not be placed; empty without stores).",
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(stats.campaign_stats(self.get_object()))


class CampaignSettingsView(APIView):
    """The organisation's frequency cap and SMS quiet hours."""

    @extend_schema(summary="Campaign settings", responses=CampaignSettingsSerializer, tags=TAGS)
    def get(self, request):
        found = services.campaign_settings_get(organization=request.organization)
        return Response(CampaignSettingsSerializer(found).data)

    @extend_schema(
        summary="Change the campaign settings",
        description="`cap_messages` in `cap_days` (both, or both null for no cap); "
        "`quiet_start_hour`/`quiet_end_hour` (0-23) in each customer's time zone.",
        request=SettingsWriteSerializer,
        responses=CampaignSettingsSerializer,
        tags=TAGS,
    )
    def put(self, request):
        data = _valid(SettingsWriteSerializer, request)
        found = services.campaign_settings_update(organization=request.organization, data=data)
        return Response(CampaignSettingsSerializer(found).data)


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("campaigns", CampaignViewSet, basename="campaign")
urlpatterns = [
    path("campaigns/settings/", CampaignSettingsView.as_view(), name="campaign-settings"),
    *router.urls,
    *automation_urls,
]
