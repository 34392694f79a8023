"""`GET offers/suggestions/`: one suggested offer per live segment, with the
evidence of earlier offers' hold-outs or "none" (offers/suggestions.py)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .suggestions import segment_suggestions

TAGS = ["offers"]


class OfferSuggestionOfferSerializer(serializers.Serializer):
    kind = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    name = serializers.CharField()


class OfferSuggestionEvidenceSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["measured", "none"])
    offers = serializers.ListField(child=serializers.IntegerField())
    expected_uplift = serializers.FloatField(
        allow_null=True, help_text="Points of conversion over the hold-out."
    )
    expected_incremental_revenue_per_recipient = serializers.FloatField(allow_null=True)
    expected_cost_per_recipient = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="95% interval of the incremental revenue per recipient.",
    )
    uplift_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    recipients = serializers.IntegerField()
    holdout = serializers.IntegerField()
    supported = serializers.BooleanField()


class OfferSuggestionSerializer(serializers.Serializer):
    segment_id = serializers.IntegerField()
    segment = serializers.CharField()
    customers = serializers.IntegerField()
    angle = serializers.CharField(
        help_text="bundle, winback, early_access, welcome or free_shipping."
    )
    offer = OfferSuggestionOfferSerializer()
    why = serializers.CharField()
    evidence = OfferSuggestionEvidenceSerializer()


class OfferSuggestionsView(APIView):
    @extend_schema(
        tags=TAGS,
        summary="A suggested offer for each live segment",
        description="The same offer for everyone in the segment (never a price per "
        "person, never from sensitive attributes). `evidence.status` is `measured` only "
        "when finished earlier offers giving the same thing kept a hold-out of at least "
        "30 people (and 30 recipients); otherwise `none`: run it with a hold-out.",
        responses={200: OfferSuggestionSerializer(many=True)},
    )
    def get(self, request):
        items = segment_suggestions(organization=request.organization)
        return Response(OfferSuggestionSerializer(items, many=True).data)


urlpatterns = [
    path("offers/suggestions/", OfferSuggestionsView.as_view(), name="offer-suggestions"),
]
