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
