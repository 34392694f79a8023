"""Loyalty API (CONTRACT.md, "Campaigns, offers and loyalty"): `loyalty/program/`
(GET, PUT), `customers/{id}/loyalty/` (GET) and `customers/{id}/loyalty/redeem/`
(POST). Customers come from the scoped manager, so another organisation's ids
answer 404; reads need any key, writes a write key (or a marketer)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import NotFound

from . import selectors, services

TAGS = ["loyalty"]
NO_PROGRAMME = "There is no loyalty programme yet: PUT loyalty/program/ to create one."


class LoyaltyTierSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    threshold = serializers.FloatField(
        min_value=0, help_text="Orders (a whole number) or spend in the period that reaches it."
    )
    members = serializers.IntegerField(read_only=True, help_text="Customers in the tier now.")


class LoyaltyProgramSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=["orders", "spend"])
    period_days = serializers.IntegerField()
    points_per_unit = serializers.FloatField()
    reward_points = serializers.IntegerField()
    reward_value = serializers.FloatField()
    active = serializers.BooleanField()
    tiers = LoyaltyTierSerializer(many=True)
    members = serializers.IntegerField(help_text="Customers holding a tier now.")
    as_of = serializers.DateField(
        allow_null=True, help_text="The last computation's cut-off (a day in your time zone)."
    )
    computed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    job = serializers.IntegerField(
        allow_null=True, required=False, help_text="The job recomputing tiers (after a PUT)."
    )


class LoyaltyProgramWriteSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=["orders", "spend"])
    period_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Rolling period (default 365)."
    )
    points_per_unit = serializers.FloatField(
        min_value=0, required=False, help_text="Points per unit of currency spent (default 1)."
    )
    tiers = LoyaltyTierSerializer(
        many=True, help_text="1 to 10 tiers, lowest first, thresholds strictly increasing."
    )
    reward_points = serializers.IntegerField(
        min_value=1, required=False, help_text="Points a reward costs (default 500)."
    )
    reward_value = serializers.FloatField(
        required=False, help_text="What a reward code takes off (default 5)."
    )
    active = serializers.BooleanField(required=False)


class LoyaltyCustomerSerializer(serializers.Serializer):
    tier = serializers.CharField(allow_null=True)
    points = serializers.IntegerField()
    next_tier = serializers.CharField(allow_null=True)
    remaining = serializers.FloatField(
        allow_null=True, help_text="Orders or spend still needed for the next tier."
    )
    metric = serializers.ChoiceField(choices=["orders", "spend"])
    metric_value = serializers.FloatField(help_text="Orders or spend in the rolling period.")
    progress = serializers.FloatField(help_text="0 to 1 of the way to the next tier.")
    tier_since = serializers.DateField(allow_null=True)
    period_days = serializers.IntegerField()
    points_earned = serializers.IntegerField()
    points_redeemed = serializers.IntegerField()
    reward_points = serializers.IntegerField()
    reward_value = serializers.FloatField()
    can_redeem = serializers.BooleanField()
    as_of = serializers.DateField(allow_null=True)


class LoyaltyRedemptionSerializer(serializers.Serializer):
    code = serializers.CharField()
    points = serializers.IntegerField()
    value = serializers.FloatField()


def program_answer(program, job=None) -> dict:
    tiers = {row["id"]: row["members"] for row in selectors.tier_counts()}
    metric = program.metric
    return {
        "metric": metric,
        "period_days": program.period_days,
        "points_per_unit": float(program.points_per_unit),
        "reward_points": program.reward_points,
        "reward_value": float(program.reward_value),
        "active": program.active,
        "tiers": [
            {
                "name": t.name,
                "threshold": int(t.threshold) if metric == "orders" else float(t.threshold),
                "members": tiers.get(t.pk, 0),
            }
            for t in selectors.tiers_of(program)
        ],
        "members": sum(tiers.values()),
        "as_of": program.as_of,
        "computed_at": program.computed_at,
        "created_at": program.created_at,
        "updated_at": program.updated_at,
        "job": job.pk if job is not None else None,
    }


class LoyaltyProgramView(APIView):
    @extend_schema(
        summary="The loyalty programme",
        description="404 before a programme is created.",
        responses={200: LoyaltyProgramSerializer},
        tags=TAGS,
    )
    def get(self, request):
        program = services.program_get(organization=request.organization)
        if program is None:
            raise NotFound(NO_PROGRAMME)
        return Response(LoyaltyProgramSerializer(program_answer(program)).data)

    @extend_schema(
        summary="Create or change the loyalty programme",
        description="Tiers from the number of orders or the spend over a rolling period "
        "(days of your time zone); points per unit of currency spent, returns taking them "
        "back. Answers the programme with the `job` that places every customer (201 when "
        "created). Fields left out keep their value. Launching or re-shaping the tiers "
        "records everyone's placement without `tier_changed` events, so automations on "
        "tier changes do not message everyone at once.",
        request=LoyaltyProgramWriteSerializer,
        responses={200: LoyaltyProgramSerializer, 201: LoyaltyProgramSerializer},
        tags=TAGS,
    )
    def put(self, request):
        existed = services.program_get(organization=request.organization) is not None
        program, job = services.program_save(
            organization=request.organization,
            data=request.data,
            user=request.user,
            request=request,
        )
        return Response(
            LoyaltyProgramSerializer(program_answer(program, job)).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )


def _customer(pk: int):
    from customers.models import Customer

    customer = Customer.objects.filter(pk=pk, erased_at__isnull=True).first()
    if customer is None:
        raise NotFound("No such customer.")
    return customer


class LoyaltyCustomerView(APIView):
    @extend_schema(
        summary="A customer's tier, points and progress to the next tier",
        description="404 for an unknown customer, or before a loyalty programme exists.",
        responses={200: LoyaltyCustomerSerializer},
        tags=TAGS,
    )
    def get(self, request, pk: int):
        info = selectors.customer_loyalty(customer=_customer(pk))
        if info is None:
            raise NotFound(NO_PROGRAMME)
        return Response(LoyaltyCustomerSerializer(info).data)


class LoyaltyRedeemView(APIView):
    @extend_schema(
        summary="Exchange a customer's points for a reward code",
        description="Takes the programme's `reward_points` and issues a unique code worth "
        "`reward_value` off. 409 `not_enough_points` when the customer has too few, "
        "`no_programme` without a programme, `programme_paused` when it is paused.",
        request=None,
        responses={
            201: LoyaltyRedemptionSerializer,
            409: OpenApiResponse(description="Too few points, no programme, or paused."),
        },
        tags=TAGS,
    )
    def post(self, request, pk: int):
        redemption = services.points_redeem(
            organization=request.organization,
            customer=_customer(pk),
            user=request.user,
            request=request,
        )
        return Response(
            LoyaltyRedemptionSerializer(
                {"code": redemption.code, "points": redemption.points, "value": redemption.value}
            ).data,
            status=status.HTTP_201_CREATED,
        )


urlpatterns = [
    path("loyalty/program/", LoyaltyProgramView.as_view(), name="loyalty-program"),
    path("customers/<int:pk>/loyalty/", LoyaltyCustomerView.as_view(), name="customer-loyalty"),
    path(
        "customers/<int:pk>/loyalty/redeem/",
        LoyaltyRedeemView.as_view(),
        name="customer-loyalty-redeem",
    ),
]
