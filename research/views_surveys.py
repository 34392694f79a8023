"""Survey pages (mounted under /research/, namespace `research`): the list, the
builder (new and edit), a survey's results, its CSV and closing it.

Views are thin: the builder's rows are read by forms_surveys.py, the services in
research/surveys.py check and save, and every `ApplicationError` becomes a message
beside its field or at the top of the page. Surveys come through the scoped
manager with `get_object_or_404`, so another organisation's ids answer 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import links, surveys
from .forms_surveys import (
    SurveyForm,
    questions_from_rows,
    rows_from_post,
    rows_from_questions,
)
from .models import QuestionType, Survey, SurveyResponse, SurveyStatus

TYPE_CHOICES = [("", "Choose a type")] + [(t.value, t.label) for t in QuestionType]


def _survey(pk: int) -> Survey:
    return get_object_or_404(Survey.objects.all(), pk=pk)  # the scoped manager


def _segment(value) -> Any:
    from segmentation.models import Segment

    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return Segment.objects.filter(pk=pk, is_active=True).first()


def _url(name: str, query: dict) -> str:
    try:
        return f"{reverse(name)}?{urlencode(query)}"
    except NoReverseMatch:
        return ""


def campaign_url(survey: Survey, segment=None) -> str:
    query: dict[str, Any] = {"survey": survey.pk}
    if segment is not None:
        query["segment"] = segment.pk
    return _url("campaigns:new", query)


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def nps_words(value) -> str:
    if value is None:
        return "—"
    return f"{'+' if value > 0 else ('−' if value < 0 else '')}{abs(value):g}"


# --- list ----------------------------------------------------------------------------
@org_required
@require_GET
def survey_list(request):
    rows = Survey.objects.annotate(answers=Count("responses")).order_by("-created_at", "-id")
    items = [{"survey": s, "url": links.public_url(s), "answers": s.answers} for s in rows]
    return render(request, "research/surveys/list.html", {"items": items})


# --- builder -------------------------------------------------------------------------
def _form_page(request, *, survey: Survey | None):
    segment = _segment(request.GET.get("segment") or request.POST.get("segment"))
    answered = survey is not None and SurveyResponse.objects.filter(survey=survey).exists()
    problem = ""
    if request.method == "POST":
        form = SurveyForm(request.POST)
        rows = rows_from_post(request.POST)
        questions, problem = questions_from_rows(rows)
        if form.is_valid() and not problem:
            data = {**form.cleaned_data, "questions": questions}
            try:
                if survey is None:
                    saved = surveys.survey_create(
                        organization=request.organization, data=data, actor=request.user
                    )
                    messages.success(
                        request, "Survey saved. Share its link or send it in a campaign."
                    )
                else:
                    saved = surveys.survey_update(survey=survey, data=data, actor=request.user)
                    messages.success(request, "Changes saved.")
            except ApplicationError as exc:
                fields = (exc.extra or {}).get("fields") or {}
                for name in ("name", "intro", "thank_you", "personal_links"):
                    if name in fields:
                        form.add_error(name, fields[name])
                if not any(n in fields for n in ("name", "intro", "thank_you", "personal_links")):
                    problem = exc.message
            else:
                url = reverse("research:survey_detail", args=[saved.pk])
                if segment is not None:
                    url += f"?{urlencode({'segment': segment.pk})}"
                return redirect(url)
        status = 400
    else:
        status = 200
        if survey is None:
            form = SurveyForm()
            rows = rows_from_questions(
                [
                    {
                        "type": "nps",
                        "text": "How likely are you to recommend us to a friend?",
                        "required": True,
                    },
                    {"type": "text", "text": "What is the main reason for your score?"},
                ]  # fmt: skip
            )
        else:
            form = SurveyForm(
                initial={
                    "name": survey.name,
                    "intro": survey.intro,
                    "thank_you": survey.thank_you,
                    "personal_links": survey.personal_links,
                }
            )
            rows = rows_from_questions(survey.questions or [])
    return render(
        request,
        "research/surveys/form.html",
        {
            "form": form,
            "survey": survey,
            "rows": rows,
            "row_count": len(rows),
            "types": TYPE_CHOICES,
            "problem": problem,
            "answered": answered,
            "segment": segment,
        },
        status=status,
    )


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def survey_new(request):
    return _form_page(request, survey=None)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def survey_edit(request, pk: int):
    return _form_page(request, survey=_survey(pk))


# --- results -------------------------------------------------------------------------
def _chart_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    dist = item.get("distribution") or []
    total = sum(d["count"] for d in dist)
    top = max([d["count"] for d in dist] + [0])
    out = []
    for d in dist:
        label = str(d["value"])
        if item["type"] == QuestionType.RATING:
            label = f"{d['value']} star{'s' if d['value'] != 1 else ''}"
        out.append(
            {
                "label": label,
                "count": d["count"],
                "share": _pct(d["count"], total),
                "bar": round(100.0 * d["count"] / top, 1) if top else 0.0,
                "group": (
                    (
                        "promoter"
                        if d["value"] >= 9
                        else "passive"
                        if d["value"] >= 7
                        else "detractor"
                    )
                    if item["type"] == QuestionType.NPS
                    else ""
                ),
            }
        )
    return out


def _results_context(survey: Survey, segment) -> dict[str, Any]:
    results = surveys.survey_results(survey, segment_id=segment.pk if segment else None)
    nps_question = next((q for q in results["questions"] if q["type"] == QuestionType.NPS), None)
    headline = None
    if nps_question and nps_question.get("nps") is not None:
        n = nps_question["answered"]
        headline = {
            "value": nps_words(nps_question["nps"]),
            "promoters": _pct(nps_question["promoters"], n),
            "detractors": _pct(nps_question["detractors"], n),
            "passives": _pct(nps_question["passives"], n),
            "answered": n,
        }
    for q in results["questions"]:
        q["rows"] = _chart_rows(q)
        q["number"] = q["index"] + 1
        if q["type"] == QuestionType.NPS:
            q["nps_words"] = nps_words(q.get("nps"))
    for s in results["by_segment"]:
        s["nps_words"] = nps_words(s.get("nps"))
        s["url"] = reverse("segmentation:segment_detail", args=[s["segment_id"]])
    rate = results.get("response_rate")
    return {
        "results": results,
        "headline": headline,
        "rate_words": f"{rate * 100:.0f}%" if rate is not None else None,
        "has_nps": nps_question is not None,
    }


@org_required
@require_GET
def survey_detail(request, pk: int):
    survey = _survey(pk)
    segment = _segment(request.GET.get("segment"))
    context = {
        "survey": survey,
        "public_url": links.public_url(survey),
        "segment": segment,
        "campaign_url": campaign_url(survey, segment),
        **_results_context(survey, segment),
    }
    return render(request, "research/surveys/detail.html", context)


@org_required
@require_GET
def survey_export(request, pk: int):
    from core.csvstream import csv_response

    survey = _survey(pk)
    headers, rows = surveys.results_csv(survey)
    return csv_response(f"survey-{survey.pk}-answers.csv", headers, rows)


@org_required(write=True)
@require_POST
def survey_close(request, pk: int):
    survey = _survey(pk)
    if survey.status == SurveyStatus.CLOSED:
        messages.info(request, "This survey was already closed.")
    else:
        surveys.survey_close(survey=survey, actor=request.user)
        messages.success(request, "Survey closed: its links now say it takes no more answers.")
    return redirect("research:survey_detail", pk=survey.pk)
