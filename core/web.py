"""Web addresses that reach a page or a browser's address bar: product links and
`next` redirects. One place for both checks, so every view and import uses them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme

WEB_SCHEMES = ("http", "https")
# Browsers drop tabs and newlines anywhere in a URL ("java\tscript:" runs), and
# other control characters have no place in a link either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def web_url_problem(value: str) -> str | None:
    """Why `value` is not an absolute http(s) address, or None when it is one (or
    empty). Anything else (`javascript:`, `data:`, `//host` without a scheme) would
    run script or leave the site when the owner clicks it."""
    value = (value or "").strip()
    if not value:
        return None
    if _CONTROL.search(value):
        return "must be a web address (http:// or https://) without control characters"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "is not a valid web address"
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc:
        return "must be a web address starting with http:// or https://"
    return None


def is_web_url(value) -> bool:
    """True for a non-empty absolute http(s) address (templates link only these)."""
    return bool(value) and web_url_problem(str(value)) is None


def safe_next_url(request, *, default: str) -> str:
    """The request's `next` (POST, then GET) when it stays on this site, else `default`.

    Every redirect to a user-given address goes through here; in production the
    target must also be https."""
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    return checked_next(request, nxt, default=default)


def checked_next(request, nxt: str, *, default: str) -> str:
    """`nxt` when it is a local address (same host, allowed scheme), else `default`."""
    # only a path or a full address: a bare word ("x") is not an address, and
    # redirect() would try it as a view name and fail
    if nxt and not (nxt.startswith("/") or "://" in nxt):
        return default
    if nxt and url_has_allowed_host_and_scheme(
        nxt,
        allowed_hosts={request.get_host()},
        require_https=settings.PRODUCTION or request.is_secure(),
    ):
        return nxt
    return default


class NulCharacterMiddleware:
    """Answers 400 to a query string holding a NUL character. No text column can
    store one and PostgreSQL refuses it even in a filter, so without this check a
    search for `sku=a%00b` would fail deep in a query (a 500) rather than here,
    naming the parameter."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = next((key for key, value in request.GET.lists() if _has_nul(key, value)), None)
        if bad is not None:
            from django.http import JsonResponse
            from django.shortcuts import render

            name = bad.replace("\x00", "") or "query"
            message = f"The parameter {name!r} contains a NUL character, which is not allowed."
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {"error": {"code": "invalid", "message": message, "fields": {name: message}}},
                    status=400,
                )
            return render(
                request,
                "error.html",
                {"status": 400, "title": "That address is not valid", "text": message},
                status=400,
            )
        return self.get_response(request)


def _has_nul(key: str, values: list[str]) -> bool:
    return "\x00" in key or any("\x00" in value for value in values)
