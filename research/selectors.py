"""Reads for the research pages, the customer and segment panels, erasure and exports
of the analysis (ResearchRun, Theme, FeedbackInsight). Surveys have their own
(research/surveys.py)."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch, reverse

from .models import FeedbackInsight, ResearchRun, SurveyResponse, Theme

POSITIVE_AT = 0.05  # VADER's rule, as the step counts shares
PANEL_FEEDBACK = 20  # newest feedback items on the customer panel
PHRASE_SAMPLE = 5_000  # texts per group read for the segment panel's key phrases


def sentiment_words(value: float | None) -> str:
    """A sentiment score in words for a shop owner: positive, mixed or negative
    ("" for no text to read)."""
    if value is None:
        return ""
    if value >= POSITIVE_AT:
        return "positive"
    if value <= -POSITIVE_AT:
        return "negative"
    return "mixed"


def _url(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # a page not built yet
        return None


# --- the latest run and its themes ------------------------------------------------------


def latest_run() -> ResearchRun | None:
    return ResearchRun.objects.order_by("-finished_at", "-id").first()


def themes_current() -> QuerySet[Theme]:
    """The latest run's themes, largest first (earlier runs' themes are deleted)."""
    run = latest_run()
    if run is None:
        return Theme.objects.none()
    return Theme.objects.filter(run=run).order_by("position", "id")


def theme_mentions_by_week(theme: Theme) -> list[dict[str, Any]]:
    """Mentions of a theme per week (Monday, in the organisation's time zone), oldest
    first, weeks without mentions included: [{"week": date, "count"}]."""
    from loyalty.services import organization_zone

    zone = organization_zone(theme.organization)
    counts: Counter[dt.date] = Counter()
    moments = FeedbackInsight.objects.filter(theme=theme).values_list(
        "feedback__created_at", flat=True
    )
    for moment in moments.iterator(chunk_size=5000):
        day = moment.astimezone(zone).date()
        counts[day - dt.timedelta(days=day.weekday())] += 1
    if not counts:
        return []
    week, last = min(counts), max(counts)
    out = []
    while week <= last:
        out.append({"week": week, "count": counts.get(week, 0)})
        week += dt.timedelta(days=7)
    return out


def feedback_list(filters: dict[str, Any] | None = None) -> QuerySet:
    """Feedback, newest first, with its insight and theme joined. Filters (each
    optional): `theme` (id), `sentiment` ("positive", "mixed", "negative", "none"),
    `source`, `customer` (id), `segment` (a Segment: its members now), `q` (words in
    the text), `rating` (a number)."""
    from customers.models import Feedback

    filters = filters or {}
    qs = Feedback.objects.select_related("insight", "insight__theme", "customer").order_by(
        "-created_at", "-id"
    )
    if filters.get("theme"):
        qs = qs.filter(insight__theme_id=filters["theme"])
    mood = filters.get("sentiment")
    if mood == "positive":
        qs = qs.filter(insight__sentiment__gte=POSITIVE_AT)
    elif mood == "negative":
        qs = qs.filter(insight__sentiment__lte=-POSITIVE_AT)
    elif mood == "mixed":
        qs = qs.filter(insight__sentiment__gt=-POSITIVE_AT, insight__sentiment__lt=POSITIVE_AT)
    elif mood == "none":
        qs = qs.filter(Q(insight__isnull=True) | Q(insight__sentiment__isnull=True))
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("customer"):
        qs = qs.filter(customer_id=filters["customer"])
    if filters.get("segment") is not None:
        from segmentation.selectors import segment_members

        qs = qs.filter(customer_id__in=segment_members(segment=filters["segment"]).values("pk"))
    if filters.get("q"):
        for word in str(filters["q"]).split()[:5]:
            qs = qs.filter(text__icontains=word)
    if filters.get("rating") not in (None, ""):
        qs = qs.filter(rating=filters["rating"])
    return qs


# --- the customer page's panel ------------------------------------------------------------


def customer_panel(*, request, customer) -> dict | None:
    """The customer page's "What they told you" place: their newest feedback with its
    sentiment in words and theme, and their survey answers."""
    from customers.models import Feedback

    items = []
    rows = (
        Feedback.objects.filter(customer_id=customer.pk)
        .select_related("insight", "insight__theme")
        .order_by("-created_at", "-id")[:PANEL_FEEDBACK]
    )
    for f in rows:
        insight = getattr(f, "insight", None)
        theme = insight.theme if insight is not None else None
        items.append(
            {
                "created_at": f.created_at,
                "source": f.source,
                "rating": f.rating,
                "text": f.text,
                "sentiment": sentiment_words(insight.sentiment if insight else None),
                "analysed": insight is not None,
                "theme": theme.label if theme else "",
                "theme_url": _url("research:theme", theme.pk) if theme else None,
            }
        )
    total = (
        Feedback.objects.filter(customer_id=customer.pk).count()
        if len(items) == (PANEL_FEEDBACK)
        else len(items)
    )
    responses = []
    for r in SurveyResponse.objects.filter(customer_id=customer.pk).select_related("survey")[:10]:
        questions = r.survey.questions or []
        answers = r.answers or []
        responses.append(
            {
                "survey": r.survey.name,
                "survey_url": _url("research:survey_detail", r.survey_id),
                "answered_at": r.updated_at or r.created_at,
                "answers": [
                    {"question": q.get("text", ""), "answer": _answer_text(a)}
                    for q, a in zip(questions, answers, strict=False)
                    if a not in (None, "", [])
                ],
            }
        )
    return {
        "template": "research/_customer_panel.html",
        "context": {
            "feedback": items,
            "total": total,
            "responses": responses,
            "feedback_url": _url("research:feedback"),
            "customer_id": customer.pk,
        },
    }


def _answer_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- the segment page's panel -------------------------------------------------------------


def _sample(items: list, n: int, seed: int = 0) -> list:
    if len(items) <= n:
        return items
    return random.Random(seed).sample(items, n)


def _quotes(texts: list[tuple[int, str]], phrase: str | None, n: int = 2) -> list[dict]:
    from research.text.themes import _quote

    chosen = [t for t in texts if phrase and phrase in t[1].lower()] or texts
    out, seen = [], set()
    for fid, text in chosen:
        quoted = _quote(text)
        if quoted.lower() in seen:
            continue
        seen.add(quoted.lower())
        out.append({"feedback_id": fid, "text": quoted})
        if len(out) == n:
            break
    return out


def segment_panel(*, request, segment) -> dict | None:
    """The segment page's "What they praise and complain about": the themes this
    segment mentions notably more or less than others (with the sentence), the key
    phrases of its members' positive and negative feedback against everyone else's,
    a quote or two each, and an action. None when its members gave no feedback."""
    from customers.models import Feedback
    from research.text import key_phrases
    from segmentation.selectors import segment_members

    member_ids = segment_members(segment=segment).values("pk")
    mine = list(
        FeedbackInsight.objects.filter(
            feedback__customer_id__in=member_ids, sentiment__isnull=False
        ).values_list("feedback_id", "feedback__text", "sentiment")
    )
    if not mine and not Feedback.objects.filter(customer_id__in=member_ids).exists():
        return None
    mine_ids = {fid for fid, _, _ in mine}
    others = list(
        FeedbackInsight.objects.filter(sentiment__isnull=False)
        .exclude(feedback_id__in=mine_ids)
        .order_by("-feedback_id")
        .values_list("feedback__text", "sentiment")[: 4 * PHRASE_SAMPLE]
    )
    groups = []
    for kind, test, heading in (
        ("praise", lambda s: s >= POSITIVE_AT, "What they praise"),
        ("complaints", lambda s: s <= -POSITIVE_AT, "What they complain about"),
    ):
        texts = _sample([(fid, t) for fid, t, s in mine if test(s)], PHRASE_SAMPLE)
        background = _sample([t for t, s in others if test(s)], PHRASE_SAMPLE)
        phrases = key_phrases([t for _, t in texts], background=background, top=5)
        groups.append(
            {
                "kind": kind,
                "heading": heading,
                "count": len([1 for _, _, s in mine if test(s)]),
                "phrases": [p.text for p in phrases],
                "quotes": _quotes(texts, phrases[0].text if phrases else None),
            }
        )
    themes = []
    for theme in themes_current():
        entry = next((e for e in theme.by_segment if e.get("segment_id") == segment.pk), None)
        if entry and entry.get("notable"):
            themes.append(
                {
                    "id": theme.pk,
                    "label": theme.label,
                    "sentence": entry.get("sentence", ""),
                    "index": entry.get("index"),
                    "url": _url("research:theme", theme.pk),
                }
            )
    themes.sort(key=lambda t: -(t["index"] or 0))
    survey_url = _url("research:survey_new")
    return {
        "template": "research/_segment_panel.html",
        "context": {
            "feedback_count": len(mine),
            "themes": themes,
            "groups": groups,
            "survey_url": f"{survey_url}?segment={segment.pk}" if survey_url else None,
            "overview_url": _url("research:overview"),
        },
    }


# --- erasure and exports ------------------------------------------------------------------


def erase_customers(*, organization, customer_ids) -> None:
    """Their feedback is deleted by the customers' erasure (its insights go with it);
    theme quotes may still hold their words: quotes whose feedback is gone are dropped."""
    from customers.models import Feedback

    FeedbackInsight.objects.filter(feedback__customer_id__in=customer_ids).delete()
    themes = list(Theme.objects.exclude(examples=[]).only("id", "examples"))
    quoted = {e.get("feedback_id") for t in themes for e in t.examples or []}
    alive = set(Feedback.objects.filter(pk__in=quoted).values_list("pk", flat=True))
    for theme in themes:
        kept = [e for e in theme.examples if e.get("feedback_id") in alive]
        if kept != theme.examples:
            Theme.objects.filter(pk=theme.pk).update(examples=kept)


def person_export(*, customer) -> dict:
    """What the analysis says about one person's feedback."""
    rows = (
        FeedbackInsight.objects.filter(feedback__customer_id=customer.pk)
        .order_by("feedback__created_at", "feedback_id")
        .values_list(
            "feedback__external_id",
            "feedback__created_at",
            "sentiment",
            "theme__label",
            "phrases",
            "analysed_at",
        )
    )
    return {
        "feedback_analysis": [
            {
                "feedback_id": fid,
                "created_at": created.isoformat(),
                "sentiment": sentiment,
                "sentiment_in_words": sentiment_words(sentiment),
                "theme": label or "",
                "phrases": phrases or [],
                "analysed_at": analysed.isoformat(),
            }
            for fid, created, sentiment, label, phrases, analysed in rows
        ]
    }


def org_export() -> list[tuple[str, list[str], object]]:
    """Each feedback item's sentiment and theme, and the latest run's themes."""
    insights = (
        FeedbackInsight.objects.order_by("feedback__created_at", "feedback_id")
        .values_list(
            "feedback__external_id",
            "feedback__customer__external_id",
            "feedback__created_at",
            "feedback__source",
            "sentiment",
            "theme_id",
            "theme__label",
            "phrases",
            "analysed_at",
        )
        .iterator(chunk_size=2000)
    )

    def insight_rows():
        for fid, cid, created, source, sentiment, theme_id, label, phrases, analysed in insights:
            yield [fid, cid or "", created, source, "" if sentiment is None else sentiment,
                   sentiment_words(sentiment), theme_id or "", label or "",
                   "; ".join(phrases or []), analysed]  # fmt: skip

    def theme_rows():
        for t in themes_current():
            trend = t.trend or {}
            yield [t.pk, t.position, t.label, "; ".join(t.phrases or []), t.size,
                   "" if t.sentiment is None else t.sentiment, trend.get("last_30d", ""),
                   trend.get("prev_30d", ""), trend.get("trend", ""),
                   " | ".join(e.get("text", "") for e in t.examples or [])]  # fmt: skip

    return [
        (
            "feedback_insights.csv",
            [
                "feedback_id",
                "customer_id",
                "created_at",
                "source",
                "sentiment",
                "sentiment_in_words",
                "theme_id",
                "theme",
                "phrases",
                "analysed_at",
            ],  # fmt: skip
            insight_rows(),
        ),
        (
            "themes.csv",
            [
                "theme_id",
                "position",
                "label",
                "phrases",
                "size",
                "sentiment",
                "last_30d",
                "prev_30d",
                "trend",
                "examples",
            ],  # fmt: skip
            theme_rows(),
        ),
    ]
