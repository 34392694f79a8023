"""The survey page a customer reaches through a survey link, with no account.

Who is asking is never taken from a session or the address bar: the organisation
comes only from the link's signed value (research/links.py), and the survey and the
customer are looked up inside that organisation's scope (`tenant_context`).

- An altered or cut-short value answers 400; a genuine value whose survey or
  customer is gone (or another organisation's) answers 404; a retired public link
  (the survey's public key changed) 404; a closed survey 410; a survey of a
  suspended organisation 503 (no answers until it is reactivated); each with a
  short page.
- GET shows the questions; POST (CSRF-protected) records the answers and shows the
  thank-you text. A personal link answered before shows the earlier answers to edit,
  or says it was already answered, as the survey's owner chose (`personal_links`).
- Requests are counted per client address and per link in the cache; over the
  limit answers 429 with `Retry-After` (answers are limited more tightly than views).
- Every answer carries `X-Robots-Tag: noindex` and is never cached.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import Organization
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError

from . import links
from .models import PersonalLinks, QuestionType, ResponseChannel, Survey, SurveyStatus
from .surveys import previous_response, record_response

# (requests, seconds): per client address, and per link, for views and for answers.
# A personal link is one person's; the public link is shared by everyone the shop
# gave it to, so its own budget is larger (each address still has its limit).
LIMITS = {
    "view_ip": (120, 60),
    "view_link": (60, 60),
    "answer_ip": (20, 60),
    "answer_link": (6, 60),
    "view_public_link": (1200, 60),
    "answer_public_link": (300, 60),
}
NPS_WORDS = ("Not at all likely", "Extremely likely")
RATING_WORDS = {1: "Very poor", 2: "Poor", 3: "OK", 4: "Good", 5: "Excellent"}


def _cache():
    return caches["default"]


def _limits() -> dict[str, tuple[int, int]]:
    return {**LIMITS, **getattr(settings, "SURVEY_RATE_LIMITS", {})}


def _over_limit(request, token: str) -> int:
    """0 when the request may go on, else the seconds to wait."""
    from accounts.services import _client_ip

    kind = "answer" if request.method == "POST" else "view"
    limits = _limits()
    ip = _client_ip(request) or "unknown"
    link = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]
    now = int(time.time())
    cache = _cache()
    # the kind of link as it says (checked later; a forged "public" one gets a 400)
    public = ".p" in token.rpartition(":")[0]
    wait = 0
    for scope, ident in (("ip", ip), ("public_link" if public else "link", link)):
        allowed, window = limits[f"{kind}_{scope}"]
        bucket = now // window
        key = f"survey-rl:{kind}:{scope}:{ident}:{bucket}"
        cache.add(key, 0, timeout=window + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window + 5)
            count = 1
        if count > allowed:
            wait = max(wait, (bucket + 1) * window - now)
    return wait


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, f"research/public/{template}", context, status=status)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _message(request, title: str, text: str, status: int, **extra) -> HttpResponse:
    return _page(
        request, "message.html", {"title": title, "text": text, "status": status, **extra}, status
    )


def _gone(request) -> HttpResponse:
    return _message(
        request,
        "This survey link no longer works",
        "The survey it points to is no longer available. Thank you for wanting to help.",
        404,
    )


def _choices(q: dict[str, Any], i: int) -> list[dict[str, Any]]:
    if q["type"] == QuestionType.RATING:
        return [
            {"value": str(v), "label": str(v), "words": RATING_WORDS[v], "id": f"q{i}-{v}"}
            for v in range(1, 6)
        ]
    if q["type"] == QuestionType.NPS:
        return [
            {"value": str(v), "label": str(v), "words": "", "id": f"q{i}-{v}"} for v in range(11)
        ]
    if q["type"] == QuestionType.CHOICE:
        return [
            {"value": o, "label": o, "words": "", "id": f"q{i}-{n}"}
            for n, o in enumerate(q.get("options") or [])
        ]
    return []


def _form_context(survey: Survey, values: list[Any], errors: dict[str, str]) -> list[dict]:
    out = []
    for i, q in enumerate(survey.questions or []):
        value = values[i] if i < len(values) else None
        out.append(
            {
                "index": i,
                "name": f"q{i}",
                "type": q["type"],
                "text": q["text"],
                "required": bool(q.get("required")),
                "choices": _choices(q, i),
                "value": "" if value is None else str(value),
                "error": errors.get(f"answers.{i}", ""),
                "low_words": NPS_WORDS[0] if q["type"] == QuestionType.NPS else "",
                "high_words": NPS_WORDS[1] if q["type"] == QuestionType.NPS else "",
            }
        )
    return out


def _posted_answers(request, survey: Survey) -> list[Any]:
    answers: list[Any] = []
    for i, _ in enumerate(survey.questions or []):
        value = request.POST.get(f"q{i}", "")
        answers.append(value if value.strip() else None)
    return answers


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def answer(request, token: str):
    wait = _over_limit(request, token)
    if wait:
        response = _message(
            request,
            "Please wait a moment",
            "This survey link was used many times in a short while. Please try again in a minute.",
            429,
        )
        response["Retry-After"] = str(wait)
        return response
    try:
        link = links.read_value(token)
    except ApplicationError as exc:
        return _message(request, "This survey link does not work", exc.message, 400)
    organization = Organization.objects.filter(pk=link.organization_id).first()
    if organization is None:
        return _gone(request)
    if not organization.is_active:
        # Suspended by Segmenta (accounts/suspension.py): no new answers meanwhile.
        return _message(
            request,
            "This survey is paused",
            f"{organization.name} is not collecting answers right now. Thank you for "
            "wanting to help.",
            503,
        )
    with tenant_context(organization):
        survey = Survey.objects.filter(pk=link.survey_id).first()
        if survey is None:
            return _gone(request)
        customer = None
        if link.customer_id is None:
            if link.public_key != survey.public_key:
                return _gone(request)
        else:
            from customers.models import Customer

            customer = Customer.objects.filter(pk=link.customer_id).first()
            if customer is None or customer.erased_at is not None:
                return _gone(request)
        shop = organization.name
        if request.method != "POST" and request.GET.get("done") == "1":
            return _page(
                request,
                "thanks.html",
                {
                    "survey": survey,
                    "shop": shop,
                    "edit": customer is not None and survey.personal_links == PersonalLinks.EDIT,
                },  # fmt: skip
            )
        if survey.status != SurveyStatus.OPEN:
            return _message(
                request,
                "This survey is closed",
                f"{shop} is no longer collecting answers to “{survey.name}”. Thank you for "
                "wanting to help.",
                410,
            )
        previous = previous_response(survey=survey, customer=customer)
        if previous is not None and survey.personal_links == PersonalLinks.ONCE:
            return _message(
                request,
                "You have already answered",
                f"Your answers to “{survey.name}” reached {shop}. Thank you!",
                200,
            )
        context = {"survey": survey, "shop": shop, "previous": previous, "errors": {}}
        if request.method == "POST":
            answers = _posted_answers(request, survey)
            channel = ResponseChannel.PUBLIC if customer is None else ResponseChannel.PERSONAL
            try:
                record_response(
                    survey=survey,
                    answers=answers,
                    channel=channel,
                    customer=customer,
                    request_meta={"via": "link"},
                )
            except ApplicationError as exc:
                errors = (exc.extra or {}).get("fields") or {}
                if exc.code == "already_answered":
                    return _message(request, "You have already answered", exc.message, 409)
                if exc.code == "closed":
                    return _message(request, "This survey is closed", exc.message, 410)
                context.update(
                    questions=_form_context(survey, answers, errors),
                    errors=errors,
                    error_count=len(errors) or 1,
                    error_message="" if errors else exc.message,
                )
                return _page(request, "form.html", context, status=400)
            return HttpResponseRedirect(request.path + "?done=1", status=303)
        values = previous.answers if previous is not None else []
        context["questions"] = _form_context(survey, values, {})
        return _page(request, "form.html", context)
