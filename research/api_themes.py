"""`GET research/themes/`, `GET research/themes/{id}/` and `GET research/summary/`:
the themes found in the feedback and the sentiment model of the latest research run
(research/analysis.py; nothing is computed in the request). The list has the
contract's shape; one theme adds its key phrases, trend word and each segment's
figures and sentence. Theme ids change with each run."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError, NotFound

from .selectors import latest_run, themes_current

TAGS = ["research"]
NO_RUN = "No research run yet: themes and sentiment appear after the research step has run."


class ResearchThemeExampleSerializer(serializers.Serializer):
    feedback_id = serializers.IntegerField(help_text="The feedback item's API id.")
    text = serializers.CharField(help_text="The quote, cut to 160 characters.")


class ResearchThemeTrendSerializer(serializers.Serializer):
    last_30d = serializers.IntegerField(help_text="Mentions in the 30 days up to the run's date.")
    prev_30d = serializers.IntegerField(help_text="Mentions in the 30 days before those.")
    change = serializers.FloatField(
        allow_null=True, help_text="(last − prev) / prev; null when there were none before."
    )


class ResearchThemeSegmentSerializer(serializers.Serializer):
    segment_id = serializers.IntegerField()
    share = serializers.FloatField(help_text="Share of the segment's feedback on this theme.")
    index = serializers.FloatField(
        allow_null=True,
        help_text="share / the same share among everyone else; null when no one else mentions it.",
    )


class ResearchThemeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    size = serializers.IntegerField(help_text="Feedback items on this theme.")
    sentiment = serializers.FloatField(allow_null=True, help_text="Mean sentiment, −1…1.")
    examples = ResearchThemeExampleSerializer(many=True)
    trend = ResearchThemeTrendSerializer()
    by_segment = ResearchThemeSegmentSerializer(many=True)


class ResearchThemeSegmentDetailSerializer(ResearchThemeSegmentSerializer):
    count = serializers.IntegerField(help_text="Mentions by the segment's members.")
    share_others = serializers.FloatField()
    notable = serializers.BooleanField(
        help_text="At least 5 mentions, an index of at least 1.5 (or at most 1/1.5) and a "
        "Fisher exact test below 0.05."
    )
    sentence = serializers.CharField()


class ResearchThemeTrendDetailSerializer(ResearchThemeTrendSerializer):
    trend = serializers.ChoiceField(choices=["growing", "shrinking", "steady", "too few"])


class ResearchThemeDetailSerializer(ResearchThemeSerializer):
    position = serializers.IntegerField(help_text="0 for the largest theme.")
    phrases = serializers.ListField(child=serializers.CharField())
    trend = ResearchThemeTrendDetailSerializer()
    by_segment = ResearchThemeSegmentDetailSerializer(many=True)
    run_id = serializers.IntegerField()


class ResearchSummarySerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    as_of = serializers.DateField(allow_null=True)
    finished_at = serializers.DateTimeField()
    feedback_count = serializers.IntegerField()
    text_count = serializers.IntegerField()
    model = serializers.ChoiceField(
        choices=["lexicon", "rated"],
        help_text="lexicon: the general word list; rated: trained on your own ratings.",
    )
    model_sentence = serializers.CharField(help_text="Why this model, in plain words.")
    rated = serializers.IntegerField(
        allow_null=True, help_text="Feedback items with a 1–2 or 4–5 star rating and text."
    )
    macro_f1 = serializers.FloatField(
        allow_null=True, help_text="The trained model's cross-validated macro-F1."
    )
    accuracy = serializers.FloatField(allow_null=True)
    lexicon_macro_f1 = serializers.FloatField(allow_null=True)
    lexicon_accuracy = serializers.FloatField(allow_null=True)
    summary = serializers.DictField(
        help_text="Counts, mean sentiment and shares positive/negative: overall, last_30d, "
        "prev_30d and by_source."
    )


def _trend(theme, *, detail: bool) -> dict:
    trend = theme.trend or {}
    out = {
        "last_30d": trend.get("last_30d", 0),
        "prev_30d": trend.get("prev_30d", 0),
        "change": trend.get("change"),
    }
    if detail:
        out["trend"] = trend.get("trend", "too few")
    return out


def _theme(theme, *, detail: bool = False) -> dict:
    segments = theme.by_segment or []
    out = {
        "id": theme.pk,
        "label": theme.label,
        "size": theme.size,
        "sentiment": theme.sentiment,
        "examples": [
            {"feedback_id": e.get("feedback_id"), "text": e.get("text", "")}
            for e in theme.examples or []
        ],
        "trend": _trend(theme, detail=detail),
        "by_segment": [
            {"segment_id": s["segment_id"], "share": s.get("share", 0.0), "index": s.get("index")}
            for s in segments
        ],
    }
    if detail:
        out.update(position=theme.position, phrases=theme.phrases or [], run_id=theme.run_id)
        out["by_segment"] = [
            {
                "segment_id": s["segment_id"],
                "share": s.get("share", 0.0),
                "index": s.get("index"),
                "count": s.get("count", 0),
                "share_others": s.get("share_others", 0.0),
                "notable": bool(s.get("notable")),
                "sentence": s.get("sentence", ""),
            }
            for s in segments
        ]
    return out


class ResearchThemeListView(APIView):
    @extend_schema(
        tags=TAGS,
        summary="Themes found in the feedback",
        description="The latest research run's themes, largest first (at most 8; feedback "
        "on no theme is not listed). `[]` before the first run. Ids change with each run.",
        responses={200: ResearchThemeSerializer(many=True)},
    )
    def get(self, request):
        return Response([_theme(t) for t in themes_current()])


class ResearchThemeDetailView(APIView):
    @extend_schema(
        tags=TAGS,
        summary="One theme with its key phrases and each segment's figures",
        responses={200: ResearchThemeDetailSerializer},
    )
    def get(self, request, pk: int):
        theme = themes_current().filter(pk=pk).first()
        if theme is None:
            raise NotFound("No theme with this id in the latest research run.")
        return Response(_theme(theme, detail=True))


class ResearchSummaryView(APIView):
    @extend_schema(
        tags=TAGS,
        summary="The latest research run: sentiment model and overall figures",
        description="404 `no_run` before the first research run. The accuracy figures are "
        "null unless the business has at least 200 rated texts with 20 of each kind.",
        responses={200: ResearchSummarySerializer},
    )
    def get(self, request):
        run = latest_run()
        if run is None:
            raise ApplicationError(NO_RUN, code="no_run", status=404)
        cv = run.cv or {}
        return Response(
            {
                "run_id": run.pk,
                "as_of": run.as_of.isoformat() if run.as_of else None,
                "finished_at": run.finished_at.isoformat(),
                "feedback_count": run.feedback_count,
                "text_count": run.text_count,
                "model": run.model,
                "model_sentence": run.model_sentence,
                "rated": cv.get("rated", cv.get("n")),
                "macro_f1": cv.get("macro_f1"),
                "accuracy": cv.get("accuracy"),
                "lexicon_macro_f1": cv.get("lexicon_macro_f1"),
                "lexicon_accuracy": cv.get("lexicon_accuracy"),
                "summary": run.summary or {},
            }
        )


urlpatterns = [
    path("research/themes/", ResearchThemeListView.as_view(), name="research-themes"),
    path(
        "research/themes/<int:pk>/", ResearchThemeDetailView.as_view(), name="research-theme-detail"
    ),
    path("research/summary/", ResearchSummaryView.as_view(), name="research-summary"),
]
