"""`GET research/changes/`: what changed this month, as the latest research run
found it (research/changes.py; nothing is computed in the request)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .changes import latest_run

TAGS = ["research"]


class ResearchChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["product", "category", "segment", "source", "theme"])
    direction = serializers.ChoiceField(choices=["up", "down", "new"])
    title = serializers.CharField()
    sentence = serializers.CharField(help_text="Plain words with the numbers.")
    url = serializers.CharField(
        allow_null=True, help_text="The site page with the evidence (a path)."
    )
    evidence = serializers.DictField(
        help_text="The numbers behind the sentence (keys depend on `kind`)."
    )
    weight = serializers.FloatField(help_text="Importance; the list is heaviest first.")


class ResearchChangesSerializer(serializers.Serializer):
    as_of = serializers.DateField(
        allow_null=True, help_text="The last day of the 30 days compared with the 30 before."
    )
    computed_at = serializers.DateTimeField(allow_null=True)
    changes = ResearchChangeSerializer(many=True)


class ResearchChangesView(APIView):
    @extend_schema(
        tags=TAGS,
        summary="What changed this month",
        description="Products and categories selling more or less, segments growing or "
        "shrinking, where new customers came from and feedback themes on the rise, from "
        "the latest research run (at most six, heaviest first). Before the first run "
        "`as_of` and `computed_at` are null and `changes` is empty.",
        responses={200: ResearchChangesSerializer},
    )
    def get(self, request):
        run = latest_run()
        data = {
            "as_of": run.as_of if run else None,
            "computed_at": run.finished_at if run else None,
            "changes": list(run.changes or []) if run else [],
        }
        return Response(ResearchChangesSerializer(data).data)


urlpatterns = [
    path("research/changes/", ResearchChangesView.as_view(), name="research-changes"),
]
