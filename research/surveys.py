"""Surveys: building one, recording answers, its results, and what erasure and the
exports need.

- `survey_create`, `survey_update`, `survey_close` write surveys; the questions are
  checked by `validate_questions` (messages name the question and the field). Once
  a survey has answers its questions keep their shape (type, options, order): a
  change would make the earlier answers mean something else.
- `record_response` stores one answer set from a personal link, the public link or
  the API. A personal link's second answer edits the first (`personal_links`
  "edit", the contract's default) or is refused ("once"). A known customer's answer
  also becomes one `survey_answered` event and, when it holds free text or a
  rating, one `Feedback` row (source "survey") that research analyses with the rest;
  both follow an edit. Public answers are anonymous: no customer, no event.
- `survey_results` is the contract's results shape (NPS = % 9–10 − % 0–6) with each
  question's distribution, mean, NPS and text themes; `results_csv` one row per answer.
- Personal data: a customer's answers go with them on erasure and are in both exports.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError

from .models import (
    PersonalLinks,
    QuestionType,
    ResponseChannel,
    Survey,
    SurveyResponse,
    SurveyStatus,
)

__all__ = [
    "MAX_QUESTIONS",
    "erase_customers",
    "nps",
    "org_export",
    "person_export",
    "record_response",
    "response_rate",
    "results_csv",
    "survey_close",
    "survey_create",
    "survey_results",
    "survey_update",
    "validate_answers",
    "validate_questions",
]

log = logging.getLogger("segmenta.research")

MAX_QUESTIONS = 20
MAX_QUESTION_TEXT = 300
MAX_OPTIONS = 20
MAX_OPTION_TEXT = 200
MAX_ANSWER_TEXT = 2000
MAX_NAME = 200
MAX_LONG_TEXT = 2000
TYPES = [t.value for t in QuestionType]
THEMES_FROM = 10  # text answers needed before looking for themes
EVENT_TYPE = "survey_answered"


# --- questions and answers -----------------------------------------------------------
def _q(i: int) -> str:
    return f"Question {i + 1}"


def unstorable(text: str) -> str:
    """Why `text` cannot be stored ("" when it can): PostgreSQL refuses a NUL
    character in text and JSON, and a lone surrogate (JSON's "\\ud800") is no UTF-8."""
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a broken character (a lone surrogate), which cannot be stored"
    return ""


def validate_questions(questions: Any) -> list[dict[str, Any]]:
    """The questions in their stored form, or an `ApplicationError` naming the
    question number and the field (`extra["fields"]["questions"]`)."""

    def bad(message: str) -> ApplicationError:
        return ApplicationError(message, {"fields": {"questions": message}})

    if not isinstance(questions, list):
        raise bad("questions must be a list of questions.")
    if not questions:
        raise bad("Add at least one question.")
    if len(questions) > MAX_QUESTIONS:
        raise bad(f"A survey has at most {MAX_QUESTIONS} questions; this one has {len(questions)}.")
    out: list[dict[str, Any]] = []
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            raise bad(f"{_q(i)} must be an object with a type and a text.")
        unknown = set(q) - {"type", "text", "options", "required"}
        if unknown:
            raise bad(f"{_q(i)}: unknown field {', '.join(sorted(map(str, unknown)))}.")
        qtype = q.get("type")
        if qtype not in TYPES:
            raise bad(f"{_q(i)}: type must be one of {', '.join(TYPES)} (got {qtype!r}).")
        text = q.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad(f"{_q(i)}: text is missing; write the question to ask.")
        text = text.strip()
        if unstorable(text):
            raise bad(f"{_q(i)}: text {unstorable(text)}.")
        if len(text) > MAX_QUESTION_TEXT:
            raise bad(f"{_q(i)}: text is {len(text)} characters long; at most {MAX_QUESTION_TEXT}.")
        required = q.get("required", False)
        if required is None:
            required = False
        if not isinstance(required, bool):
            raise bad(f"{_q(i)}: required must be true or false.")
        item: dict[str, Any] = {"type": qtype, "text": text, "required": required}
        options = q.get("options")
        if qtype == QuestionType.CHOICE:
            if not isinstance(options, list):
                raise bad(f"{_q(i)}: options are missing; a choice question needs 2 to 20.")
            cleaned = []
            for option in options:
                if not isinstance(option, str) or not option.strip():
                    raise bad(f"{_q(i)}: each option must be a non-empty text.")
                if unstorable(option):
                    raise bad(f"{_q(i)}: an option {unstorable(option)}.")
                if len(option.strip()) > MAX_OPTION_TEXT:
                    raise bad(f"{_q(i)}: an option is longer than {MAX_OPTION_TEXT} characters.")
                cleaned.append(option.strip())
            if not 2 <= len(cleaned) <= MAX_OPTIONS:
                raise bad(
                    f"{_q(i)}: options: a choice question needs 2 to {MAX_OPTIONS} options "
                    f"(got {len(cleaned)})."
                )
            folded = [c.casefold() for c in cleaned]
            if len(set(folded)) != len(folded):
                dup = next(c for c in cleaned if folded.count(c.casefold()) > 1)
                raise bad(f"{_q(i)}: options: “{dup}” is listed twice; each must differ.")
            item["options"] = cleaned
        elif options not in (None, []):
            raise bad(f"{_q(i)}: options only go with a choice question, not {qtype}.")
        out.append(item)
    return out


def _shape(questions: list[dict[str, Any]]) -> list[tuple]:
    return [(q.get("type"), tuple(q.get("options") or ())) for q in questions or []]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        # ASCII digits only ("²".isdigit() is true, int() refuses it), and few of them
        # (int() refuses more than 4,300)
        if digits.isascii() and digits.isdigit() and len(digits) <= 6:
            return int(text)
    return None


def validate_answers(survey: Survey, answers: Any) -> list[Any]:
    """The answers in their stored form (None for a question left blank), or an
    `ApplicationError` whose `extra["fields"]` maps "answers.<i>" to the message
    naming the question (the public page shows each beside its question)."""
    questions = survey.questions or []
    if not isinstance(answers, list):
        raise ApplicationError(
            "answers must be a list with one value per question, in order.",
            {"fields": {"answers": "answers must be a list."}},
        )
    if len(answers) != len(questions):
        message = (
            f"answers has {len(answers)} value{'s' if len(answers) != 1 else ''}; this survey "
            f"has {len(questions)} question{'s' if len(questions) != 1 else ''} (give one value "
            "per question, null for one left blank)."
        )
        raise ApplicationError(message, {"fields": {"answers": message}})
    out: list[Any] = []
    errors: dict[str, str] = {}
    for i, (q, value) in enumerate(zip(questions, answers, strict=True)):
        name = f"{_q(i)} (“{q['text'][:60]}”)"
        if _blank(value):
            if q.get("required"):
                errors[f"answers.{i}"] = f"{name} needs an answer."
            out.append(None)
            continue
        qtype = q["type"]
        if qtype in (QuestionType.RATING, QuestionType.NPS):
            low, high = (1, 5) if qtype == QuestionType.RATING else (0, 10)
            number = _as_int(value)
            if number is None or not low <= number <= high:
                errors[f"answers.{i}"] = f"{name}: choose a whole number from {low} to {high}."
                out.append(None)
                continue
            out.append(number)
        elif qtype == QuestionType.CHOICE:
            options = q.get("options") or []
            if not isinstance(value, str) or value.strip() not in options:
                errors[f"answers.{i}"] = f"{name}: choose one of: {', '.join(options)}."
                out.append(None)
                continue
            out.append(value.strip())
        else:
            if not isinstance(value, str):
                errors[f"answers.{i}"] = f"{name}: the answer must be text."
                out.append(None)
                continue
            text = value.strip()
            if unstorable(text):
                errors[f"answers.{i}"] = f"{name}: the answer {unstorable(text)}."
                out.append(None)
                continue
            if len(text) > MAX_ANSWER_TEXT:
                errors[f"answers.{i}"] = (
                    f"{name}: the answer is {len(text):,} characters long; at most "
                    f"{MAX_ANSWER_TEXT:,}."
                )
                out.append(None)
                continue
            out.append(text)
    if errors:
        raise ApplicationError(" ".join(errors.values()), {"fields": errors})
    return out


# --- surveys -------------------------------------------------------------------------
def _person(user):
    from django.contrib.auth import get_user_model

    return user if isinstance(user, get_user_model()) and user.pk else None


def _audit(*, organization, action: str, survey: Survey, actor, details=None) -> None:
    from accounts.services import audit_log

    audit_log(
        organization=organization,
        action=action,
        actor=actor,
        target=f"survey {survey.pk}: {survey.name}",
        details={"survey_id": survey.pk, **(details or {})},
    )


def _text(data: dict, key: str, *, limit: int, label: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"{key} must be text.", {"fields": {key: f"{label} must be text."}})
    value = value.strip()
    if unstorable(value):
        message = f"{label} {unstorable(value)}."
        raise ApplicationError(message, {"fields": {key: message}})
    if len(value) > limit:
        message = f"{label} is {len(value):,} characters long; at most {limit:,}."
        raise ApplicationError(message, {"fields": {key: message}})
    return value


def _apply(survey: Survey, data: dict, *, creating: bool) -> list[str]:
    changed: list[str] = []
    unknown = set(data) - {"name", "intro", "thank_you", "questions", "personal_links", "status"}
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise ApplicationError(
            f"Unknown field {names}.", {"fields": {n: "Unknown field." for n in unknown}}
        )
    if creating or "name" in data:
        name = _text(data, "name", limit=MAX_NAME, label="The name")
        if not name:
            raise ApplicationError(
                "name is missing: give the survey a name.",
                {"fields": {"name": "Give the survey a name."}},
            )
        if name != survey.name:
            survey.name = name
            changed.append("name")
    for key, label in (("intro", "The introduction"), ("thank_you", "The thank-you text")):
        if key in data:
            value = _text(data, key, limit=MAX_LONG_TEXT, label=label)
            if value != getattr(survey, key):
                setattr(survey, key, value)
                changed.append(key)
    if "personal_links" in data:
        value = data.get("personal_links") or PersonalLinks.EDIT
        if value not in PersonalLinks.values:
            message = f"personal_links must be one of {', '.join(PersonalLinks.values)}."
            raise ApplicationError(message, {"fields": {"personal_links": message}})
        if value != survey.personal_links:
            survey.personal_links = value
            changed.append("personal_links")
    if "status" in data:
        status = data.get("status")
        if status not in SurveyStatus.values:
            message = f"status must be one of {', '.join(SurveyStatus.values)}."
            raise ApplicationError(message, {"fields": {"status": message}})
        if status != survey.status:
            survey.status = status
            changed.append("status")
    if creating or "questions" in data:
        if creating and "questions" not in data:
            raise ApplicationError(
                "questions is missing: add at least one question.",
                {"fields": {"questions": "Add at least one question."}},
            )
        questions = validate_questions(data.get("questions"))
        if not creating and _shape(questions) != _shape(survey.questions):
            if SurveyResponse.objects.filter(survey=survey).exists():
                raise ApplicationError(
                    "questions cannot change their type, options or order once the survey "
                    "has answers (the earlier answers would then mean something else). You "
                    "can still reword a question, change whether it is required, or make a "
                    "new survey.",
                    {"fields": {"questions": "The questions' shape is fixed once answered."}},
                    code="conflict",
                    status=409,
                )
        if questions != survey.questions:
            survey.questions = questions
            changed.append("questions")
    return changed


def survey_create(*, organization, data: dict, actor=None) -> Survey:
    scope_check(organization=organization)
    survey = Survey(organization=organization, created_by=_person(actor))
    _apply(survey, dict(data or {}), creating=True)
    with transaction.atomic():
        survey.save()
        _audit(organization=organization, action="survey.created", survey=survey, actor=actor)
    return survey


def survey_update(*, survey: Survey, data: dict, actor=None) -> Survey:
    changed = _apply(survey, dict(data or {}), creating=False)
    if changed:
        survey.updated_at = timezone.now()
        with transaction.atomic():
            survey.save()
            _audit(
                organization=survey.organization,
                action="survey.updated",
                survey=survey,
                actor=actor,
                details={"changed": changed},
            )
    return survey


def survey_close(*, survey: Survey, actor=None) -> Survey:
    if survey.status != SurveyStatus.CLOSED:
        survey.status = SurveyStatus.CLOSED
        survey.updated_at = timezone.now()
        with transaction.atomic():
            survey.save(update_fields=["status", "updated_at"])
            _audit(
                organization=survey.organization, action="survey.closed", survey=survey, actor=actor
            )
    return survey


# --- answers -------------------------------------------------------------------------
def _feedback_parts(survey: Survey, answers: list[Any]) -> tuple[float | None, str] | None:
    rating = None
    texts = []
    has_rating = False
    for q, value in zip(survey.questions or [], answers, strict=False):
        if value is None:
            continue
        if q["type"] == QuestionType.RATING:
            has_rating = True
            if rating is None:
                rating = float(value)
        elif q["type"] == QuestionType.TEXT and value:
            texts.append(str(value))
    if not has_rating and not texts:
        return None
    return rating, "\n\n".join(texts)


def _sync_feedback(response: SurveyResponse, survey: Survey) -> None:
    from customers.models import Feedback

    parts = _feedback_parts(survey, response.answers)
    external_id = f"survey-{survey.pk}-{response.pk}"
    if parts is None:
        if response.feedback_id:
            Feedback.objects.filter(pk=response.feedback_id).delete()
            response.feedback = None
        return
    rating, text = parts
    values = {
        "customer_id": response.customer_id,
        "created_at": response.updated_at,
        "source": "survey",
        "rating": rating,
        "text": text,
        "properties": {"survey_id": survey.pk, "survey": survey.name, "channel": response.channel},
    }
    feedback, _ = Feedback.objects.update_or_create(
        external_id=external_id, defaults={**values, "organization_id": survey.organization_id}
    )
    response.feedback = feedback


def _sync_event(response: SurveyResponse, survey: Survey) -> None:
    from customers.models import Event

    if response.customer_id is None:
        return
    properties = {"survey_id": survey.pk, "survey": survey.name, "response_id": response.pk}
    existing = Event.objects.filter(
        customer_id=response.customer_id, type=EVENT_TYPE, properties__response_id=response.pk
    ).first()
    if existing is not None:
        existing.occurred_at = response.updated_at
        existing.properties = properties
        existing.updated_at = timezone.now()
        existing.save(update_fields=["occurred_at", "properties", "updated_at"])
        return
    Event.objects.create(
        organization_id=survey.organization_id,
        customer_id=response.customer_id,
        type=EVENT_TYPE,
        occurred_at=response.updated_at,
        properties=properties,
    )


def previous_response(*, survey: Survey, customer) -> SurveyResponse | None:
    """A customer's earlier answer through their personal link, if any."""
    if customer is None:
        return None
    return SurveyResponse.objects.filter(
        survey=survey, customer_id=customer.pk, channel=ResponseChannel.PERSONAL
    ).first()


ALREADY_ANSWERED = "This survey was already answered through this link. Thank you!"


def record_response(
    *,
    survey: Survey,
    answers: Any,
    channel: str,
    customer=None,
    request_meta: dict | None = None,
) -> SurveyResponse:
    """Store one answer set (checked first); see the module's notes for what else it
    writes. `request_meta` is not stored (no addresses kept): it is only logged."""
    if survey.status != SurveyStatus.OPEN:
        raise ApplicationError(
            "This survey is closed and takes no more answers.", code="closed", status=409
        )
    if channel not in ResponseChannel.values:
        raise ApplicationError(f"Unknown channel {channel!r}.")
    if channel == ResponseChannel.PUBLIC:
        customer = None  # the public link is anonymous
    if channel == ResponseChannel.PERSONAL and customer is None:
        raise ApplicationError("A personal link's answer needs its customer.")
    if customer is not None and customer.erased_at is not None:
        raise ApplicationError(
            "This customer was erased; their answers are not recorded.",
            {"fields": {"customer_id": "The customer was erased."}},
            code="erased",
        )
    cleaned = validate_answers(survey, answers)
    now = timezone.now()
    with transaction.atomic():
        response = None
        if channel == ResponseChannel.PERSONAL:
            response = (
                SurveyResponse.objects.select_for_update()
                .filter(survey=survey, customer_id=customer.pk, channel=channel)
                .first()
            )
            if response is not None and survey.personal_links == PersonalLinks.ONCE:
                raise ApplicationError(ALREADY_ANSWERED, code="already_answered", status=409)
        if response is None:
            response = SurveyResponse(
                organization_id=survey.organization_id,
                survey=survey,
                customer=customer,
                channel=channel,
                answers=cleaned,
                created_at=now,
                updated_at=now,
            )
            try:
                with transaction.atomic():
                    response.save()
            except IntegrityError as exc:  # two answers through one link at the same moment
                raise ApplicationError(
                    "This link was just used to answer; open it again to see the answers.",
                    code="already_answered",
                    status=409,
                ) from exc
        else:
            response.answers = cleaned
            response.updated_at = now
        _sync_feedback(response, survey)
        response.save()
        _sync_event(response, survey)
    log.info(
        "survey_answered",
        extra={
            "survey_id": survey.pk,
            "response_id": response.pk,
            "channel": channel,
            "edited": response.created_at != response.updated_at,
            **({"meta": request_meta} if request_meta else {}),
        },
    )
    return response


# --- results -------------------------------------------------------------------------
def nps(scores) -> float | None:
    """% answering 9–10 minus % answering 0–6 (−100…100), None with no answers."""
    values = [int(s) for s in scores if s is not None]
    if not values:
        return None
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    return round(100.0 * (promoters - detractors) / len(values), 1)


def invited_ids(survey: Survey) -> set[int] | None:
    """Customers a campaign carrying the survey was sent to (campaigns'
    `survey_invited`), or None before campaigns can carry surveys."""
    try:
        from campaigns.selectors import survey_invited
    except ImportError:
        return None
    try:
        return set(survey_invited(survey))
    except Exception:  # a campaigns change must not break the survey page
        log.exception("survey_invited_failed", extra={"survey_id": survey.pk})
        return None


def response_rate(survey: Survey, responders: set[int]) -> tuple[float | None, int]:
    invited = invited_ids(survey)
    if not invited:
        return None, 0
    return round(len(responders & invited) / len(invited), 4), len(invited)


def _themes(texts: list[str]) -> list[dict[str, Any]]:
    from research.text import find_themes

    try:
        found = find_themes(texts, max_themes=6)
    except Exception:
        log.exception("survey_themes_failed")
        return []
    out = []
    for theme in found:
        out.append(
            {
                "label": theme.label or "Other",
                "count": len(theme.members),
                "phrases": list(theme.phrases[:5]),
                "examples": [str(e) for e in theme.examples[:3]],
            }
        )
    return out


def survey_results(survey: Survey, *, segment_id: int | None = None) -> dict[str, Any]:
    """The contract's results: `responses`, `response_rate`, `nps` (the first NPS
    question's), `questions` (per question: distribution, mean, nps, texts and themes)
    and `by_segment` (per live segment of the responding customers). `segment_id`
    narrows everything to that segment's members."""
    from segmentation.selectors import customer_segments

    rows = list(
        SurveyResponse.objects.filter(survey=survey)
        .order_by("created_at", "id")
        .values_list("customer_id", "answers", "channel")
    )
    customer_ids = sorted({cid for cid, _, _ in rows if cid is not None})
    segments = customer_segments(customer_ids=customer_ids) if customer_ids else {}
    if segment_id is not None:
        keep = {
            cid
            for cid, info in segments.items()
            if any(s["id"] == segment_id for s in info["segments"])
        }
        rows = [r for r in rows if r[0] in keep]
    questions_out = []
    nps_index = None
    for i, q in enumerate(survey.questions or []):
        values = [
            a[i] for _, a, _ in rows if isinstance(a, list) and i < len(a) and a[i] is not None
        ]
        item: dict[str, Any] = {
            "index": i,
            "type": q["type"],
            "text": q["text"],
            "answered": len(values),
        }
        if q["type"] == QuestionType.RATING:
            counts = Counter(int(v) for v in values)
            item["distribution"] = [{"value": s, "count": counts.get(s, 0)} for s in range(1, 6)]
            item["mean"] = round(sum(values) / len(values), 2) if values else None
        elif q["type"] == QuestionType.NPS:
            counts = Counter(int(v) for v in values)
            item["distribution"] = [{"value": s, "count": counts.get(s, 0)} for s in range(0, 11)]
            item["nps"] = nps(values)
            item["promoters"] = sum(1 for v in values if v >= 9)
            item["passives"] = sum(1 for v in values if 7 <= v <= 8)
            item["detractors"] = sum(1 for v in values if v <= 6)
            if nps_index is None:
                nps_index = i
        elif q["type"] == QuestionType.CHOICE:
            chosen = Counter(str(v) for v in values)
            item["distribution"] = [
                {"value": o, "count": chosen.get(o, 0)} for o in q.get("options") or []
            ]
        else:
            texts = [str(v) for v in values if str(v).strip()]
            item["count"] = len(texts)
            if len(texts) >= THEMES_FROM:
                item["themes"] = _themes(texts)
                item["texts"] = texts[-20:][::-1]
            else:
                item["themes"] = []
                item["texts"] = texts[::-1]
        questions_out.append(item)

    responders = {cid for cid, _, ch in rows if cid is not None and ch == ResponseChannel.PERSONAL}
    rate, invited = response_rate(survey, responders)

    by_segment: dict[int, dict[str, Any]] = {}
    for cid, answers, _ in rows:
        if cid is None:
            continue
        segment = (segments.get(cid) or {}).get("segment")
        if not segment:
            continue
        entry = by_segment.setdefault(
            segment["id"],
            {"segment_id": segment["id"], "name": segment["name"], "responses": 0, "_scores": []},
        )
        entry["responses"] += 1
        if nps_index is not None and isinstance(answers, list) and nps_index < len(answers):
            entry["_scores"].append(answers[nps_index])
    segments_out = []
    for entry in sorted(by_segment.values(), key=lambda e: (-e["responses"], e["name"])):
        scores = entry.pop("_scores")
        entry["nps"] = nps(scores) if nps_index is not None else None
        segments_out.append(entry)
    overall = questions_out[nps_index]["nps"] if nps_index is not None else None
    return {
        "survey_id": survey.pk,
        "responses": len(rows),
        "response_rate": rate,
        "invited": invited,
        "nps": overall,
        "questions": questions_out,
        "by_segment": segments_out,
    }


def results_csv(survey: Survey) -> tuple[list[str], Iterator[list[Any]]]:
    """(headers, rows): one row per answer set, oldest first: date, channel, the
    customer's id (blank when anonymous) and each question's answer."""
    headers = ["answered_at", "channel", "customer_id"] + [
        f"Q{i + 1} {q['text']}" for i, q in enumerate(survey.questions or [])
    ]
    n = len(survey.questions or [])
    rows = (
        SurveyResponse.objects.filter(survey=survey)
        .order_by("created_at", "id")
        .values_list(
            "updated_at", "channel", "customer__external_id", "customer__erased_at", "answers"
        )
    )

    def lines() -> Iterator[list[Any]]:
        for when, channel, external_id, erased_at, answers in rows.iterator(chunk_size=2000):
            answers = answers if isinstance(answers, list) else []
            values = [("" if a is None else a) for a in answers[:n]] + [""] * (n - len(answers))
            who = "" if external_id is None or erased_at is not None else external_id
            yield [when.isoformat(), channel, who, *values]

    return headers, lines()


# --- personal data -------------------------------------------------------------------
def erase_customers(*, organization, customer_ids) -> None:
    """A person's answers are personal: they go with them, with the feedback rows
    and events their answers made."""
    from customers.models import Event, Feedback

    ids = list(customer_ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        feedback_ids = [
            f
            for f in SurveyResponse.objects.filter(customer_id__in=chunk).values_list(
                "feedback_id", flat=True
            )
            if f
        ]
        Feedback.objects.filter(pk__in=feedback_ids).delete()
        Event.objects.filter(customer_id__in=chunk, type=EVENT_TYPE).delete()
        SurveyResponse.objects.filter(customer_id__in=chunk).delete()


def _answer_pairs(questions, answers) -> list[dict[str, Any]]:
    answers = answers if isinstance(answers, list) else []
    return [
        {"question": q.get("text", ""), "answer": answers[i] if i < len(answers) else None}
        for i, q in enumerate(questions or [])
    ]


def person_export(*, customer) -> dict:
    """Every survey answer of one person, with the questions they answered."""
    rows = (
        SurveyResponse.objects.filter(customer_id=customer.pk)
        .select_related("survey")
        .order_by("created_at", "id")
    )
    answers = [
        {
            "survey_id": r.survey_id,
            "survey": r.survey.name,
            "channel": r.channel,
            "answered_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
            "answers": _answer_pairs(r.survey.questions, r.answers),
        }
        for r in rows
    ]
    return {"survey_answers": answers}


def org_export() -> list[tuple[str, list[str], object]]:
    """The surveys (questions as JSON) and every answer set, for the organisation's zip."""
    import json

    surveys = Survey.objects.order_by("id").values_list(
        "id", "name", "status", "personal_links", "questions", "created_at"
    )

    def survey_rows():
        for pk, name, status, links, questions, created in surveys.iterator(chunk_size=500):
            yield [pk, name, status, links, json.dumps(questions, ensure_ascii=False), created]

    responses = (
        SurveyResponse.objects.filter(
            Q(customer__isnull=True) | Q(customer__erased_at__isnull=True)
        )
        .order_by("survey_id", "created_at", "id")
        .values_list(
            "id",
            "survey_id",
            "survey__name",
            "channel",
            "customer__external_id",
            "answers",
            "created_at",
            "updated_at",
        )  # fmt: skip
    )

    def response_rows():
        for pk, sid, name, channel, external_id, answers, created, updated in responses.iterator(
            chunk_size=2000
        ):
            yield [pk, sid, name, channel, external_id or "",
                   json.dumps(answers, ensure_ascii=False), created, updated]  # fmt: skip

    return [
        (
            "surveys.csv",
            ["survey_id", "name", "status", "personal_links", "questions", "created_at"],
            survey_rows(),
        ),
        (
            "survey_responses.csv",
            [
                "response_id",
                "survey_id",
                "survey",
                "channel",
                "customer_id",
                "answers",
                "answered_at",
                "updated_at",
            ],  # fmt: skip
            response_rows(),
        ),
    ]
