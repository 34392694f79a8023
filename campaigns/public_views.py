"""The pages and addresses a message's recipient reaches, with no account.

Who is asking is never taken from a session or the address bar: the organisation
comes only from the link's signed value (`links.read_token`), and the delivery is
looked up by its token and that organisation inside that organisation's scope.
A value that was altered answers 400; a genuine one whose delivery is gone acts on
nothing (404). The open pixel always answers its image.

- unsubscribe: GET asks "Unsubscribe … from <shop>?"; POST unsubscribes at once.
  Mail clients POST `List-Unsubscribe=One-Click` to it (RFC 8058) without a CSRF
  token, so the view is exempt: a forged POST could only do what the link's
  holder may do anyway, and the signed value cannot be guessed.
- preferences: the person's email and SMS choices, a CSRF-protected form.
- open: a 1×1 transparent GIF that records the first open.
- click: a 302 to the campaign's stored link the value names (for the survey the
  campaign carries: the customer's own survey link), never to an address from the
  query string.
"""

from __future__ import annotations

import base64

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import Organization
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError

from . import links, tracking
from .models import CampaignSettings, TrackedLink

# The smallest transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CHANNEL_WORDS = {"email": "email", "sms": "text messages (SMS)"}


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, f"campaigns/public/{template}", context, status=status)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _bad_link(request, exc: ApplicationError) -> HttpResponse:
    return _page(
        request,
        "message.html",
        {"title": "This link does not work", "text": exc.message, "status": 400},
        status=400,
    )


def _gone(request) -> HttpResponse:
    return _page(
        request,
        "message.html",
        {
            "title": "This link no longer works",
            "text": "The message it came from is no longer on record, so there is nothing "
            "to change here.",
            "status": 404,
        },
        status=404,
    )


def _organization(org_id: int) -> Organization | None:
    return Organization.objects.filter(pk=org_id).first()


def _shop_name(organization: Organization) -> str:
    settings_row = CampaignSettings.objects.filter(organization_id=organization.pk).first()
    return (settings_row.from_name if settings_row and settings_row.from_name else "") or (
        organization.name
    )


def mask_address(address: str) -> str:
    """`jane.doe@example.com` -> `j•••e@example.com`; a phone keeps its last 3 digits."""
    address = (address or "").strip()
    if "@" in address:
        local, _, domain = address.rpartition("@")
        shown = local[0] + "•••" + (local[-1] if len(local) > 2 else "")
        return f"{shown}@{domain}"
    digits = [c for c in address if c.isdigit()]
    if not digits:
        return "your address"
    return "•••• " + "".join(digits[-3:])


def _address(delivery) -> str:
    customer = delivery.customer
    if delivery.to_address:
        return delivery.to_address
    return (customer.email if delivery.channel == "email" else customer.phone) or ""


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    try:
        org_id, delivery_token, _ = links.read_token(token, links.UNSUBSCRIBE)
    except ApplicationError as exc:
        return _bad_link(request, exc)
    organization = _organization(org_id)
    if organization is None:
        return _gone(request)
    with tenant_context(organization):
        delivery = tracking.delivery_for_token(
            organization_id=organization.pk, delivery_token=delivery_token
        )
        if delivery is None or delivery.customer.erased_at is not None:
            return _gone(request)
        context = {
            "shop": _shop_name(organization),
            "address": mask_address(_address(delivery)),
            "channel_words": CHANNEL_WORDS.get(delivery.channel, delivery.channel),
            "preferences_url": reverse(
                "campaigns_public:preferences",
                kwargs={
                    "token": links.make_token(
                        links.PREFERENCES,
                        organization_id=organization.pk,
                        delivery_token=delivery.token,
                    )
                },
            ),
        }
        if request.method == "POST":
            # Anything POSTed here unsubscribes: the mail client's one-click
            # `List-Unsubscribe=One-Click` and the page's button alike.
            tracking.record_unsubscribe(delivery)
            return _page(request, "unsubscribed.html", context)
        return _page(request, "unsubscribe.html", context)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request, token: str):
    try:
        org_id, delivery_token, _ = links.read_token(token, links.PREFERENCES)
    except ApplicationError as exc:
        return _bad_link(request, exc)
    organization = _organization(org_id)
    if organization is None:
        return _gone(request)
    with tenant_context(organization):
        delivery = tracking.delivery_for_token(
            organization_id=organization.pk, delivery_token=delivery_token
        )
        if delivery is None or delivery.customer.erased_at is not None:
            return _gone(request)
        customer = delivery.customer
        channels = [c for c, has in (("email", customer.email), ("sms", customer.phone)) if has]
        if delivery.channel not in channels:
            channels.insert(0, delivery.channel)
        if request.method == "POST":
            choices = {c: request.POST.get(c) == "on" for c in channels}
            tracking.preferences_update(delivery=delivery, choices=choices)
            return HttpResponseRedirect(request.path + "?saved=1", status=303)
        rows = [
            {
                "name": c,
                "label": "Email" if c == "email" else "Text messages (SMS)",
                "checked": bool(getattr(customer, f"accepts_{c}")),
            }
            for c in channels
        ]
        return _page(
            request,
            "preferences.html",
            {
                "shop": _shop_name(organization),
                "address": mask_address(_address(delivery)),
                "channels": rows,
                "saved": request.GET.get("saved") == "1",
            },
        )


@never_cache
@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str):
    response = HttpResponse(PIXEL, content_type="image/gif")
    try:
        org_id, delivery_token, _ = links.read_token(token, links.OPEN)
    except ApplicationError:
        return response  # a broken image in a message helps nobody
    organization = _organization(org_id)
    if organization is None or request.method != "GET":
        return response
    with tenant_context(organization):
        delivery = tracking.delivery_for_token(
            organization_id=organization.pk, delivery_token=delivery_token
        )
        if delivery is not None:
            tracking.record_open(delivery)
    return response


@never_cache
@require_http_methods(["GET", "HEAD"])
def click(request, token: str):
    try:
        org_id, delivery_token, link_id = links.read_token(token, links.CLICK)
    except ApplicationError as exc:
        return _bad_link(request, exc)
    organization = _organization(org_id)
    if organization is None:
        return _gone(request)
    with tenant_context(organization):
        link = TrackedLink.objects.filter(pk=link_id, organization_id=organization.pk).first()
        if link is None or not links.trackable(link.url):
            return _gone(request)
        delivery = tracking.delivery_for_token(
            organization_id=organization.pk, delivery_token=delivery_token
        )
        if delivery is not None and delivery.campaign_id != link.campaign_id:
            return _gone(request)
        if delivery is not None and request.method == "GET":
            tracking.record_click(delivery, link)
        # Only ever the stored address (a survey's: the customer's own link to it); the
        # query string is not read.
        return HttpResponseRedirect(links.click_target(link, delivery))
