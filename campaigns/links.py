"""Signed links in messages: unsubscribe, preferences, the open pixel and clicks.

Each link carries a value signed with the site's secret (`django.core.signing`,
one salt per purpose, so an open-pixel value is no unsubscribe value) holding the
organisation's id and the delivery's random token, plus the tracked link's id for
clicks (`<org>.<token>[.<link>]:<signature>`: short, and cheap to make several
times per message for a send of 100,000). The public views (`public_views.py`) trust nothing else: the organisation
comes only from the verified value, and the delivery is looked up by its token
*and* that organisation inside that organisation's scope. A value that was
altered, cut short or made for another purpose answers 400 (`BadLink`); a
genuine value whose delivery is gone (the person was erased) acts on nothing.

The click redirect only ever goes to a `TrackedLink` stored for the campaign,
never to an address taken from the request: no open redirect. One exception, still
no open redirect: the stored link of the survey a campaign carries (its public
address) leads the clicking customer to their own personal survey link, made here
from the verified delivery (`click_target`).

Links never expire: an unsubscribe link in a years-old message must still work
(RFC 8058); rotating `SECRET_KEY` keeps old links working while the old key is in
`SECRET_KEY_FALLBACKS`. Absolute addresses start from `settings.SITE_URL`.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError

from .models import Campaign, Delivery, TrackedLink

__all__ = [
    "PURPOSES",
    "BadLink",
    "click_target",
    "click_url",
    "list_unsubscribe_headers",
    "make_token",
    "open_pixel_url",
    "preferences_url",
    "read_token",
    "tracked_link_for",
    "unsubscribe_url",
]

UNSUBSCRIBE, PREFERENCES, OPEN, CLICK = "unsubscribe", "preferences", "open", "click"
PURPOSES = (UNSUBSCRIBE, PREFERENCES, OPEN, CLICK)
_URL_NAMES = {
    UNSUBSCRIBE: "campaigns_public:unsubscribe",
    PREFERENCES: "campaigns_public:preferences",
    OPEN: "campaigns_public:open",
    CLICK: "campaigns_public:click",
}
MAX_TOKEN_LENGTH = 400


class BadLink(ApplicationError):
    """A link value that is not one Segmenta signed for this purpose."""

    def __init__(self, message: str = "This link is not valid. It may have been cut short."):
        super().__init__(message, code="bad_link", status=400)


_SIGNERS: dict[tuple, signing.Signer] = {}
# What a delivery's token may hold: it goes into the value between dots.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _signer(purpose: str) -> signing.Signer:
    """One signer per purpose (and key: tests may change it); a send signs several
    links per message, so the signer is not rebuilt for each."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown link purpose {purpose!r}.")
    key = (purpose, settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))
    signer = _SIGNERS.get(key)
    if signer is None:
        signer = _SIGNERS[key] = signing.Signer(salt=f"segmenta.campaigns.link.{purpose}")
    return signer


def make_token(
    purpose: str, *, organization_id: int, delivery_token: str, extra: int | None = None
) -> str:
    """The signed value of a link: `<organisation id>.<delivery token>[.<link id>]`
    and its signature. `extra` (clicks: the tracked link's id) rides along."""
    delivery_token = str(delivery_token)
    if not delivery_token or not set(delivery_token) <= _TOKEN_CHARS:
        raise ApplicationError("A delivery token holds letters, digits, '-' and '_' only.")
    parts = [str(int(organization_id)), delivery_token]
    if extra is not None:
        parts.append(str(int(extra)))
    return _signer(purpose).sign(".".join(parts))


def _int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadLink()
    return int(text)


def read_token(value: str, purpose: str) -> tuple[int, str, int | None]:
    """(organization_id, delivery_token, extra) from a link's value; `BadLink`
    (400) when the value was not signed here for `purpose`. `extra` is None except
    for clicks, where it is the tracked link's id."""
    if not value or len(value) > MAX_TOKEN_LENGTH:
        raise BadLink()
    try:
        payload = _signer(purpose).unsign(value)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError) as exc:
        raise BadLink() from exc
    parts = payload.split(".")
    if len(parts) != (3 if purpose == CLICK else 2) or not set(parts[1]) <= _TOKEN_CHARS:
        raise BadLink()
    extra = _int(parts[2]) if purpose == CLICK else None
    return _int(parts[0]), parts[1], extra


@functools.cache
def _path_parts(purpose: str) -> tuple[str, str]:
    """The link's path around its value, reversed once (reversing is slow and a
    send builds several links per message)."""
    marker = "VALUE"
    path = reverse(_URL_NAMES[purpose], kwargs={"token": marker})
    before, _, after = path.partition(marker)
    return before, after


def _absolute(purpose: str, value: str) -> str:
    before, after = _path_parts(purpose)
    return f"{settings.SITE_URL}{before}{value}{after}"


def _delivery_value(purpose: str, delivery: Delivery, extra=None) -> str:
    if not delivery.token:
        raise ApplicationError("This delivery has no token, so it cannot carry links.")
    return make_token(
        purpose,
        organization_id=delivery.organization_id,
        delivery_token=delivery.token,
        extra=extra,
    )


def unsubscribe_url(delivery: Delivery) -> str:
    """The one-click unsubscribe link (GET shows a page; POST unsubscribes)."""
    return _absolute(UNSUBSCRIBE, _delivery_value(UNSUBSCRIBE, delivery))


def preferences_url(delivery: Delivery) -> str:
    """The recipient's page for choosing email and SMS."""
    return _absolute(PREFERENCES, _delivery_value(PREFERENCES, delivery))


def open_pixel_url(delivery: Delivery) -> str:
    """A 1×1 transparent image that records the first open."""
    return _absolute(OPEN, _delivery_value(OPEN, delivery))


def click_url(delivery: Delivery, tracked_link: TrackedLink) -> str:
    """The redirect to `tracked_link` that records the click."""
    if tracked_link.campaign_id != delivery.campaign_id or (
        tracked_link.organization_id != delivery.organization_id
    ):
        raise ApplicationError("This link belongs to another campaign.")
    return _absolute(CLICK, _delivery_value(CLICK, delivery, extra=tracked_link.pk))


def _survey_value(url: str) -> str | None:
    """The signed value of a survey link address (`/r/<value>/` on this site), or None."""
    from django.urls import NoReverseMatch

    try:
        path = reverse("research_public:answer", kwargs={"token": "VALUE"})
    except NoReverseMatch:
        return None
    before, _, after = f"{settings.SITE_URL}{path}".partition("VALUE")
    if not url.startswith(before) or not url.endswith(after) or len(url) <= len(before + after):
        return None
    return url[len(before) : len(url) - len(after)]


def click_target(link: TrackedLink, delivery: Delivery | None) -> str:
    """Where a click on `link` goes: its stored address, except for the public link of
    the survey the link's campaign carries, which takes the delivery's customer to
    their own personal link (so the answer is tied to them). A personal survey link
    of the organisation in the message (one customer's, copied from a preview into the
    text) never takes anyone else to that customer's answers: the clicking customer
    lands on their own link, and a click whose delivery is gone on the survey's
    public one. Call inside the link's organisation's scope, with a delivery of the
    link's campaign (or None)."""
    value = _survey_value(link.url)
    if value is None:
        return link.url
    from research.links import BadSurveyLink, personal_url, public_url, read_value
    from research.models import Survey

    try:
        found = read_value(value)
    except BadSurveyLink:
        return link.url
    if found.organization_id != link.organization_id:
        return link.url
    if found.customer_id is None:
        if delivery is None:
            return link.url
        carried = Campaign.objects.filter(pk=link.campaign_id).values_list("survey_id", flat=True)
        if found.survey_id not in carried:
            return link.url
    survey = Survey.objects.filter(pk=found.survey_id).first()
    if survey is None:  # its page says the link no longer works, whoever's it was
        return link.url
    if delivery is None:
        return public_url(survey)
    return personal_url(survey, delivery.customer_id)


def list_unsubscribe_headers(delivery: Delivery, *, url: str | None = None) -> dict[str, str]:
    """The RFC 8058 headers: mail clients show an unsubscribe button that POSTs
    `List-Unsubscribe=One-Click` to the link, with no further step. Pass `url`
    when the message's `unsubscribe_url(delivery)` is already at hand."""
    return {
        "List-Unsubscribe": f"<{url or unsubscribe_url(delivery)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def trackable(url: str) -> bool:
    """Only web addresses are tracked (not mailto:, tel:, anchors or templates)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and len(url) <= 2000
        and not any(ch.isspace() for ch in url)
    )


def tracked_link_for(campaign: Campaign, url: str) -> TrackedLink:
    """The campaign's stored link for `url`, created on first use. Only these
    addresses can ever be redirected to. Raises `ApplicationError` (naming the
    field) for anything but an http(s) address."""
    url = (url or "").strip()
    if not trackable(url):
        message = f"Only web addresses (http or https) can be tracked, not {url[:80]!r}."
        raise ApplicationError(message, {"fields": {"url": message}})
    scope_check(organization=campaign.organization_id)
    found = TrackedLink.objects.filter(campaign_id=campaign.pk, url=url).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return TrackedLink.objects.create(
                organization_id=campaign.organization_id, campaign=campaign, url=url
            )
    except IntegrityError:
        # Another worker stored it first.
        return TrackedLink.objects.get(campaign_id=campaign.pk, url=url)
