"""Survey links: a public one per survey, a personal one per survey and customer.

Each carries a value signed with the site's secret (`django.core.signing`, its own
salt, so a campaign's unsubscribe value is no survey value):

- public: `<org id>.<survey id>.p<survey public key>` — anonymous answers; changing
  the survey's `public_key` retires the old public link.
- personal: `<org id>.<survey id>.c<customer id>` — ties the answer to that
  customer and organisation; only Segmenta can make one (a campaign's
  `{{ survey_link }}`, or the survey page for one customer).

The public pages (public_views.py) trust nothing else: the organisation comes only
from the verified value and everything is looked up inside that organisation's
scope. An altered, cut-short or foreign value raises `BadSurveyLink` (answered 400).
Links never expire; rotating `SECRET_KEY` keeps them working while the old key is
in `SECRET_KEY_FALLBACKS`. Absolute addresses start from `settings.SITE_URL`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from core.exceptions import ApplicationError

__all__ = ["BadSurveyLink", "SurveyLink", "personal_url", "public_url", "read_value"]

SALT = "segmenta.research.survey-link"
MAX_VALUE_LENGTH = 300


class BadSurveyLink(ApplicationError):
    """A value that is not one Segmenta signed for a survey link."""

    def __init__(self, message: str = "This survey link is not valid. It may have been cut short."):
        super().__init__(message, code="bad_link", status=400)


@dataclass(frozen=True)
class SurveyLink:
    organization_id: int
    survey_id: int
    customer_id: int | None  # None: the public link
    public_key: str  # "" for a personal link


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def public_value(survey) -> str:
    return _signer().sign(f"{int(survey.organization_id)}.{int(survey.pk)}.p{survey.public_key}")


def personal_value(survey, customer_id: int) -> str:
    return _signer().sign(f"{int(survey.organization_id)}.{int(survey.pk)}.c{int(customer_id)}")


def _absolute(value: str) -> str:
    return f"{settings.SITE_URL}{reverse('research_public:answer', kwargs={'token': value})}"


def public_url(survey) -> str:
    """The survey's public link (anonymous answers)."""
    return _absolute(public_value(survey))


def personal_url(survey, customer_id: int) -> str:
    """`customer_id`'s own link to `survey` (same organisation: the caller's duty)."""
    return _absolute(personal_value(survey, customer_id))


def _int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadSurveyLink()
    return int(text)


def read_value(value: str) -> SurveyLink:
    """What a link's value says, once its signature is checked; `BadSurveyLink` else."""
    if not value or len(value) > MAX_VALUE_LENGTH:
        raise BadSurveyLink()
    try:
        payload = _signer().unsign(value)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError) as exc:
        raise BadSurveyLink() from exc
    parts = payload.split(".")
    if len(parts) != 3 or not parts[2]:
        raise BadSurveyLink()
    org_id, survey_id = _int(parts[0]), _int(parts[1])
    kind, rest = parts[2][0], parts[2][1:]
    if kind == "c":
        return SurveyLink(org_id, survey_id, _int(rest), "")
    if kind == "p" and rest:
        return SurveyLink(org_id, survey_id, None, rest)
    raise BadSurveyLink()
