"""Research pages (mounted at /research/, namespace `research`): the overview (what
customers say, in plain words, theme by theme), one theme's page, every feedback
item with filters, and "Run the analysis now".

Views read through the scoped managers only (`Theme.objects`, `Feedback.objects`…),
so another organisation's theme answers 404. The small reads below are private to
these pages; the figures the analysis stores (themes, trends, index per segment)
come from the latest `ResearchRun`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import org_required
from core.models import Job, JobStatus
from core.views import start_step

from . import selectors
from .models import FeedbackInsight, ResearchRun, Theme

# The word list's rule (research/text/sentiment.py): at or above +0.05 positive, at or
# below −0.05 negative, in between mixed (or neutral).
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
WINDOW_DAYS = 30
PAGE_SIZE = 50
CHART_MONTHS = 12
CHART_WEEKS = 26
SENTIMENT_CHOICES = [
    ("positive", "Positive"),
    ("negative", "Negative"),
    ("mixed", "Mixed or neutral"),
]
TREND_WORDS = {
    "growing": "Growing",
    "shrinking": "Shrinking",
    "steady": "Steady",
    "too few": "Too few mentions to tell",
}


# --- small reads ---------------------------------------------------------------


def _feedback_model():
    from customers.models import Feedback

    return Feedback


def _latest_run() -> ResearchRun | None:
    return selectors.latest_run()


def _latest_job() -> Job | None:
    return Job.objects.filter(kind="research").order_by("-created_at").first()


def _url(name: str, *args: Any, query: dict | None = None) -> str | None:
    """A link, or None while the page it names does not exist (surveys are written
    by another part of the app; a missing page hides its link, not this one)."""
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}" if query else url


def _sentiment_counts(qs: QuerySet) -> dict[str, int]:
    """Positive, negative and mixed counts among insights with a sentiment."""
    figures = qs.aggregate(
        positive=Count("pk", filter=Q(sentiment__gte=POSITIVE_AT)),
        negative=Count("pk", filter=Q(sentiment__lte=NEGATIVE_AT)),
        scored=Count("pk", filter=Q(sentiment__isnull=False)),
    )
    figures["mixed"] = figures["scored"] - figures["positive"] - figures["negative"]
    return figures


def sentiment_words(value: float | None) -> str:
    if value is None:
        return "No text to read"
    if value >= POSITIVE_AT:
        return "Positive"
    if value <= NEGATIVE_AT:
        return "Negative"
    return "Mixed or neutral"


def _percent(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0


def _bar(counts: dict[str, int]) -> dict[str, Any]:
    """Widths (out of 100) of a positive / mixed / negative bar."""
    total = counts["scored"]
    if not total:
        return {"positive": 0, "mixed": 0, "negative": 0, "total": 0}
    positive = 100 * counts["positive"] / total
    negative = 100 * counts["negative"] / total
    return {
        "positive": round(positive, 2),
        "mixed": round(100 - positive - negative, 2),
        "negative": round(negative, 2),
        "mixed_x": round(positive, 2),
        "negative_x": round(100 - negative, 2),
        "total": total,
    }


def _tone_words(counts: dict[str, int]) -> str:
    """ "Mostly positive: 40 of 52 positive, 8 negative." """
    total = counts["scored"]
    if not total:
        return "No text to read yet."
    pos, neg = counts["positive"], counts["negative"]
    if pos >= 0.6 * total:
        lead = "Mostly positive"
    elif neg >= 0.5 * total:
        lead = "Mostly negative"
    else:
        lead = "Mixed"
    return f"{lead}: {pos:,} positive, {neg:,} negative, {counts['mixed']:,} mixed or neutral."


def _window_end(run: ResearchRun | None) -> dt.date:
    if run is not None and run.as_of:
        return run.as_of
    return timezone.localdate()


def _zone(request) -> dt.tzinfo:
    """The organisation's time zone: months and weeks are the shop's own."""
    from loyalty.services import organization_zone

    return organization_zone(request.organization)


def _window(end: dt.date, back: int, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The 30 days up to `end` (back=0) or the 30 before (back=1), as aware times."""
    stop = end + dt.timedelta(days=1) - dt.timedelta(days=WINDOW_DAYS * back)
    start = stop - dt.timedelta(days=WINDOW_DAYS)
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(stop, dt.time.min, tzinfo=tz),
    )


def headline(end: dt.date, tz: dt.tzinfo) -> dict[str, Any]:
    """The overview's first sentence, from the share of positive feedback in the last
    30 days against the 30 before (all feedback when the last 30 days had none)."""
    insights = FeedbackInsight.objects.all()
    start, stop = _window(end, 0, tz)
    last = _sentiment_counts(
        insights.filter(feedback__created_at__gte=start, feedback__created_at__lt=stop)
    )
    prev_start, prev_stop = _window(end, 1, tz)
    prev = _sentiment_counts(
        insights.filter(feedback__created_at__gte=prev_start, feedback__created_at__lt=prev_stop)
    )
    period = "in the last 30 days"
    prev_counts: dict[str, int] | None = prev
    if not last["scored"]:
        last, prev_counts, period = _sentiment_counts(insights), None, "so far"
    total = last["scored"]
    if not total:
        return {"sentence": "No feedback with text has been read yet.", "counts": last}
    pos, neg = _percent(last["positive"], total), _percent(last["negative"], total)
    if pos >= 60:
        lead, share, word = "Customers are mostly happy", pos, "positive"
    elif neg >= 50:
        lead, share, word = "Customers are mostly unhappy", neg, "negative"
    else:
        lead, share, word = "Customers are divided", pos, "positive"
    change = ""
    if prev_counts and prev_counts["scored"]:
        before = _percent(prev_counts[word], prev_counts["scored"])
        if before < share:
            change = f"up from {before}%"
        elif before > share:
            change = f"down from {before}%"
        else:
            change = "the same as the 30 days before"
    sentence = f"{lead}: {share}% of what they said {period} was {word}"
    if lead == "Customers are divided":
        # the change belongs to the positive share, not to the negative one after it
        sentence += (f" ({change})" if change else "") + f" and {neg}% negative"
    elif change:
        sentence += f", {change}"
    return {"sentence": sentence + ".", "counts": last, "positive": pos, "negative": neg}


def _segments(ids) -> dict[int, Any]:
    from segmentation.models import Segment

    return {s.pk: s for s in Segment.objects.filter(pk__in=[i for i in ids if i is not None])}


def _segment_rows(theme: Theme, segments: dict[int, Any]) -> list[dict[str, Any]]:
    """The theme's index per segment, segments that still exist, highest first."""
    from .text.trends import index_sentence

    rows = []
    for entry in theme.by_segment or []:
        segment = segments.get(entry.get("segment_id"))
        if segment is None:
            continue
        index = entry.get("index")
        sentence = entry.get("sentence") or index_sentence(segment.name, theme.label.lower(), index)
        rows.append(
            {
                "segment": segment,
                "share": entry.get("share") or 0,
                "share_percent": round(100 * (entry.get("share") or 0)),
                "share_others_percent": round(100 * (entry.get("share_others") or 0)),
                "count": entry.get("count"),
                "index": index,
                "notable": bool(entry.get("notable")),
                "sentence": sentence,
                "ask_url": _url("research:survey_new", query={"segment": segment.pk}),
            }
        )
    rows.sort(key=lambda r: (not r["notable"], -(r["index"] or 0)))
    return rows


def _notable(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most notable segment: the highest index above 1 among notable ones, else
    the furthest below."""
    notable = [r for r in rows if r["notable"] and r["index"] is not None]
    above = [r for r in notable if r["index"] >= 1]
    if above:
        return max(above, key=lambda r: r["index"])
    return min(notable, key=lambda r: r["index"]) if notable else None


def _trend(theme: Theme) -> dict[str, Any]:
    trend = theme.trend or {}
    kind = trend.get("trend") or "too few"
    last, prev = trend.get("last_30d"), trend.get("prev_30d")
    counts = ""
    if last is not None and prev is not None:
        counts = f"{last:,} mention{'s' if last != 1 else ''} in the last 30 days, {prev:,} in the 30 before"
    return {"kind": kind, "words": TREND_WORDS.get(kind, kind.capitalize()), "counts": counts}


def _theme_counts(themes: list[Theme]) -> dict[int, dict[str, int]]:
    rows = (
        FeedbackInsight.objects.filter(theme__in=themes)
        .values("theme")
        .annotate(
            positive=Count("pk", filter=Q(sentiment__gte=POSITIVE_AT)),
            negative=Count("pk", filter=Q(sentiment__lte=NEGATIVE_AT)),
            scored=Count("pk", filter=Q(sentiment__isnull=False)),
        )
    )
    out = {}
    for row in rows:
        row["mixed"] = row["scored"] - row["positive"] - row["negative"]
        out[row["theme"]] = row
    return out


def _theme_card(theme: Theme, counts: dict[str, int], segments: dict[int, Any]) -> dict[str, Any]:
    rows = _segment_rows(theme, segments)
    notable = _notable(rows)
    examples = [e for e in (theme.examples or []) if e.get("text")]
    return {
        "theme": theme,
        "counts": counts,
        "tone": _tone_words(counts),
        "bar": _bar(counts),
        "trend": _trend(theme),
        "notable": notable,
        "quote": examples[0]["text"] if examples else "",
        "url": reverse("research:theme", args=[theme.pk]),
    }


def sentiment_by_month(end: dt.date, tz: dt.tzinfo) -> list[dict[str, Any]]:
    """Share of positive, mixed and negative feedback per month, the last 12 months."""
    first = (end.replace(day=1) - dt.timedelta(days=366)).replace(day=1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
    rows = (
        FeedbackInsight.objects.filter(feedback__created_at__gte=start, sentiment__isnull=False)
        .annotate(month=TruncMonth("feedback__created_at", tzinfo=tz))
        .values("month")
        .annotate(
            positive=Count("pk", filter=Q(sentiment__gte=POSITIVE_AT)),
            negative=Count("pk", filter=Q(sentiment__lte=NEGATIVE_AT)),
            scored=Count("pk"),
        )
        .order_by("month")
    )
    months = []
    for row in rows:
        month = row["month"]
        if isinstance(month, dt.datetime):
            month = month.date()
        if month is None or month > end:
            continue
        row["mixed"] = row["scored"] - row["positive"] - row["negative"]
        months.append(
            {
                "month": month,
                "total": row["scored"],
                "positive": row["positive"],
                "negative": row["negative"],
                "mixed": row["mixed"],
                "positive_percent": _percent(row["positive"], row["scored"]),
                "negative_percent": _percent(row["negative"], row["scored"]),
            }
        )
    return months[-CHART_MONTHS:]


def _month_chart(months: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of 100% per month: positive (green) from the bottom, negative (red) from
    the top, mixed between; drawn on the server (no script)."""
    # at least six months wide, so one or two months do not make two huge bars
    width, height, bar, gap = 40 * max(len(months), 6), 100, 28, 12
    bars = []
    for i, m in enumerate(months):
        pos = 100 * m["positive"] / m["total"] if m["total"] else 0
        neg = 100 * m["negative"] / m["total"] if m["total"] else 0
        bars.append(
            {
                "x": i * (bar + gap) + gap / 2,
                "pos_y": round(height - pos, 2),
                "pos_h": round(pos, 2),
                "neg_h": round(neg, 2),
                "mix_y": round(neg, 2),
                "mix_h": round(max(height - pos - neg, 0), 2),
                "label": m["month"].strftime("%b"),
                "label_x": i * (bar + gap) + gap / 2 + bar / 2,
            }
        )
    return {"width": width, "height": height, "bar": bar, "bars": bars}


def sources() -> list[dict[str, Any]]:
    Feedback = _feedback_model()
    rows = (
        Feedback.objects.values("source")
        .annotate(
            total=Count("pk"),
            positive=Count("pk", filter=Q(insight__sentiment__gte=POSITIVE_AT)),
            negative=Count("pk", filter=Q(insight__sentiment__lte=NEGATIVE_AT)),
            scored=Count("pk", filter=Q(insight__sentiment__isnull=False)),
        )
        .order_by("-total", "source")
    )
    rows = list(rows)
    top = max((r["total"] for r in rows), default=0)
    for r in rows:
        r["name"] = (r["source"] or "Not given").replace("_", " ").capitalize()
        r["width"] = round(100 * r["total"] / top, 2) if top else 0
        r["positive_percent"] = _percent(r["positive"], r["scored"])
        r["negative_percent"] = _percent(r["negative"], r["scored"])
    return rows


def _model_words(run: ResearchRun) -> dict[str, Any]:
    cv = run.cv or {}
    words: dict[str, Any] = {
        "rated": run.model == "rated",
        "sentence": run.model_sentence,
        "cv": None,
    }
    if cv.get("accuracy") is not None and cv.get("lexicon_accuracy") is not None:
        words["cv"] = {
            "n": cv.get("n"),
            "ours": round(100 * cv["accuracy"]),
            "general": round(100 * cv["lexicon_accuracy"]),
            "macro_f1": cv.get("macro_f1"),
            "lexicon_macro_f1": cv.get("lexicon_macro_f1"),
            "accuracy": cv.get("accuracy"),
            "lexicon_accuracy": cv.get("lexicon_accuracy"),
            "folds": cv.get("folds"),
        }
    return words


def _job_context() -> Job | None:
    job = _latest_job()
    show = job is not None and (not job.is_finished or job.status != JobStatus.SUCCEEDED)
    return job if show else None


# --- pages ---------------------------------------------------------------------


@org_required
@require_GET
def overview(request):
    Feedback = _feedback_model()
    feedback_count = Feedback.objects.count()
    run = _latest_run()
    context: dict[str, Any] = {
        "feedback_count": feedback_count,
        "run": run,
        "job": _job_context(),
        "surveys_url": _url("research:surveys"),
        "survey_new_url": _url("research:survey_new"),
        "import_url": _url("customers:import_new"),
    }
    if not feedback_count or run is None:
        return render(request, "research/overview.html", context)
    end = _window_end(run)
    themes = list(selectors.themes_current())
    counts = _theme_counts(themes)
    empty = {"positive": 0, "negative": 0, "mixed": 0, "scored": 0}
    ids = {e.get("segment_id") for t in themes for e in (t.by_segment or [])}
    segments = _segments(ids)
    tz = _zone(request)
    months = sentiment_by_month(end, tz)
    context.update(
        {
            "headline": headline(end, tz),
            "cards": [_theme_card(t, counts.get(t.pk, empty), segments) for t in themes],
            "months": months,
            "month_chart": _month_chart(months) if len(months) >= 1 else None,
            "sources": sources(),
            "model": _model_words(run),
            "unread": Feedback.objects.filter(insight__isnull=True).count(),
            "end": end,
        }
    )
    return render(request, "research/overview.html", context)


def _weeks(theme: Theme, end: dt.date) -> list[dict[str, Any]]:
    """Mentions of the theme per week (weeks starting Monday, in the shop's time zone),
    at most the last 26 weeks up to `end`, weeks with none included, drawn 100 × 40."""
    found = {w["week"]: w["count"] for w in selectors.theme_mentions_by_week(theme)}
    if not found:
        return []
    last_monday = max(end - dt.timedelta(days=end.weekday()), max(found))
    # from the first mention (a theme found last month should not show five empty
    # months), at most 26 weeks back
    first = max(min(found), last_monday - dt.timedelta(weeks=CHART_WEEKS - 1))
    weeks: list[dict[str, Any]] = []
    monday = first
    while monday <= last_monday:
        weeks.append({"start": monday, "count": found.get(monday, 0)})
        monday += dt.timedelta(weeks=1)
    top = max(w["count"] for w in weeks)
    step = 100 / len(weeks)
    for i, w in enumerate(weeks):
        h = 40 * w["count"] / top if top else 0
        w["x"] = round(i * step + step * 0.1, 2)
        w["w"] = round(step * 0.8, 2)
        w["h"] = round(h, 2)
        w["y"] = round(40 - h, 2)
    return weeks


def _customer(value: str):
    from customers.models import Customer

    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return Customer.objects.filter(pk=pk).first()


def _customer_link(customer) -> dict[str, Any] | None:
    if customer is None:
        return None
    if customer.erased_at is not None:
        return {"name": "Erased customer", "url": None}
    return {
        "name": customer.full_name or customer.email or customer.external_id,
        "url": reverse("customers:detail", args=[customer.pk]),
    }


def _feedback_rows(items) -> list[dict[str, Any]]:
    rows = []
    for f in items:
        insight = getattr(f, "insight", None)
        theme = insight.theme if insight is not None else None
        rows.append(
            {
                "feedback": f,
                "sentiment": sentiment_words(insight.sentiment)
                if insight is not None
                else "Not read yet",
                "sentiment_kind": (
                    "none"
                    if insight is None or insight.sentiment is None
                    else "positive"
                    if insight.sentiment >= POSITIVE_AT
                    else "negative"
                    if insight.sentiment <= NEGATIVE_AT
                    else "mixed"
                ),
                "theme": theme,
                "customer": _customer_link(f.customer),
                "rating": (
                    ("%g" % f.rating) if f.rating is not None else ""  # noqa: UP031
                ),
            }
        )
    return rows


@org_required
@require_GET
def theme_detail(request, pk: int):
    theme = get_object_or_404(Theme.objects.select_related("run"), pk=pk)
    Feedback = _feedback_model()
    latest = _latest_run()
    counts = _theme_counts([theme]).get(
        theme.pk, {"positive": 0, "negative": 0, "mixed": 0, "scored": 0}
    )
    end = _window_end(theme.run)
    segments = _segments({e.get("segment_id") for e in (theme.by_segment or [])})
    rows = _segment_rows(theme, segments)
    example_ids = [e.get("feedback_id") for e in (theme.examples or []) if e.get("text")]
    example_feedback = {
        f.pk: f for f in Feedback.objects.select_related("customer").filter(pk__in=example_ids)
    }
    examples = []
    for e in theme.examples or []:
        if not e.get("text"):
            continue
        f = example_feedback.get(e.get("feedback_id"))
        examples.append(
            {
                "text": e["text"],
                "feedback": f,
                "customer": _customer_link(f.customer) if f else None,
            }
        )
    feedback_qs = selectors.feedback_list({"theme": theme.pk})
    page = Paginator(feedback_qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "research/theme.html",
        {
            "theme": theme,
            "earlier_run": latest is not None and latest.pk != theme.run_id,
            "counts": counts,
            "tone": _tone_words(counts),
            "bar": _bar(counts),
            "trend": _trend(theme),
            "weeks": _weeks(theme, end),
            "segment_rows": rows,
            "notable": _notable(rows),
            "examples": examples,
            "page": page,
            "rows": _feedback_rows(page.object_list),
            "feedback_url": reverse("research:feedback") + f"?{urlencode({'theme': theme.pk})}",
        },
    )


class FeedbackFilterForm(forms.Form):
    source = forms.ChoiceField(required=False, label="Source")
    sentiment = forms.ChoiceField(
        required=False, label="Sentiment", choices=[("", "Any"), *SENTIMENT_CHOICES]
    )
    theme = forms.TypedChoiceField(required=False, label="Theme", coerce=int, empty_value=None)
    q = forms.CharField(required=False, label="Words in the text", max_length=200, strip=True)

    def __init__(self, *args, sources: list[str], themes: list[Theme], **kwargs):
        super().__init__(*args, **kwargs)
        source, theme = self.fields["source"], self.fields["theme"]
        assert isinstance(source, forms.ChoiceField) and isinstance(theme, forms.ChoiceField)
        source.choices = [("", "Any")] + [
            (s, s.replace("_", " ").capitalize()) for s in sources if s
        ]
        theme.choices = [("", "Any")] + [(t.pk, t.label) for t in themes]
        self.fields["source"].error_messages["invalid_choice"] = (
            "Source: “%(value)s” is not one of your feedback sources; choose one from the list."
        )
        self.fields["sentiment"].error_messages["invalid_choice"] = (
            "Sentiment: choose positive, negative or mixed."
        )
        self.fields["theme"].error_messages["invalid_choice"] = (
            "Theme: that theme is not in the latest analysis; choose one from the list."
        )
        self.fields["q"].error_messages["max_length"] = "Words in the text: at most 200 characters."


def _filters(form: FeedbackFilterForm) -> dict[str, Any]:
    """The filters that are valid; an invalid one is named on the page and left out
    (Django keeps the valid fields' values in cleaned_data)."""
    form.is_valid()
    for name in form.errors:  # screen readers read the note with the field
        if name in form.fields:
            form.fields[name].widget.attrs["aria-describedby"] = f"{form[name].id_for_label}-error"
    data = getattr(form, "cleaned_data", {})
    return {k: data[k] for k in ("source", "sentiment", "theme", "q") if data.get(k)}


@org_required
@require_GET
def feedback_list(request):
    Feedback = _feedback_model()
    run = _latest_run()
    themes = list(selectors.themes_current())
    source_names = list(
        Feedback.objects.exclude(source="").values_list("source", flat=True).distinct()
    )
    source_names.sort()
    form = FeedbackFilterForm(request.GET or None, sources=source_names, themes=themes)
    filters = _filters(form) if request.GET else {}
    # ?customer=<id> (from a customer's page): one person's feedback; an id that is not
    # one of this organisation's customers is left out, with a note
    customer, customer_error = None, ""
    if request.GET.get("customer"):
        customer = _customer(request.GET["customer"])
        if customer is None:
            customer_error = "Customer: no customer of yours has that id; showing everyone."
        else:
            filters["customer"] = customer.pk
    filtered = any(request.GET.get(k) for k in ("source", "sentiment", "theme", "q", "customer"))
    qs = selectors.feedback_list(filters)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "research/feedback.html",
        {
            "form": form,
            "customer": _customer_link(customer),
            "customer_id": customer.pk if customer else None,
            "customer_error": customer_error,
            "page": page,
            "rows": _feedback_rows(page.object_list),
            "filtered": filtered,
            "query": params.urlencode(),
            # a filter with no match is never mistaken for no feedback at all
            "has_feedback": bool(page.object_list) or Feedback.objects.exists(),
            "run": run,
            "import_url": _url("customers:import_new"),
        },
    )


@org_required(write=True)
@require_POST
def run(request):
    """Start the `research` pipeline step now."""
    if not _feedback_model().objects.exists():
        messages.error(
            request, "There is no feedback to analyse yet: import a feedback file first."
        )
        return redirect("research:overview")
    return start_step(
        request,
        "research",
        back="research:overview",
        started="Reading every piece of feedback and finding its themes. It runs in the "
        "background; progress shows below.",
    )
