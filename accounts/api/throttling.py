"""API rate limits: one budget per API key and per signed-in member, and the
`X-RateLimit-Limit`, `-Remaining` and `-Reset` headers on every API answer.

A read key's burst must not slow the organisation's write key, so each key has
its own budget (`API_THROTTLE_KEY`, default 1200/min); requests without a key or
session count per address (`API_THROTTLE_ANON`). Reset is the number of seconds
until the oldest request in the window leaves it (the budget is a sliding window).
A refused request is 429 with `Retry-After` (seconds).

An organisation whose plan has its own `api_per_minute` (accounts.limits, set by
platform staff) gets that budget for each of its keys and members instead of
`API_THROTTLE_KEY`; a refusal says so in the plan's words (code `throttled`).

Every API request authenticated for an organisation (key or session) is counted
in `ApiUsage`, the back office's figure of API calls: one UPDATE per request,
after the answer, outside any transaction of the view.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import exceptions, throttling
from rest_framework.settings import api_settings

from accounts.limits import (
    LimitReached,
    Limits,
    default_limits,
    limit_reached_audit,
    limits_for,
)

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
log = logging.getLogger("segmenta.api")
_PERIODS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


def _django_request(request):
    return getattr(request, "_request", request)


def request_limits(request) -> Limits | None:
    """The limits of the organisation the request was authenticated for (read once
    per request), or None without one."""
    target = _django_request(request)
    org = getattr(request, "organization", None) or getattr(target, "organization", None)
    if org is None:
        return None
    cached = getattr(target, "_segmenta_limits", None)
    if cached is None or cached[0] != org.pk:
        cached = (org.pk, limits_for(org))
        target._segmenta_limits = cached
    return cached[1]


class PlanThrottled(exceptions.Throttled):
    """429 in the plan's words: which limit, what to do, when to try again."""

    extra_detail_singular = "Try again in {wait} second."
    extra_detail_plural = "Try again in {wait} seconds."


class _HeadersMixin:
    """Reads its rate when used (not when imported, so settings overrides apply) and
    leaves what the headers say on the request."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def rate_for(self, request) -> str:
        return self.get_rate()

    def _note(self, request, remaining: int) -> None:
        if not self.history:
            reset = 0
        else:
            reset = max(0, int(round(self.history[-1] + self.duration - self.now)))
        target = getattr(request, "_request", request)
        state = (self.num_requests, max(0, remaining), reset)
        previous = getattr(target, "ratelimit", None)
        if previous is None or state[1] < previous[1]:
            target.ratelimit = state

    def allow_request(self, request, view):
        self.rate = self.rate_for(request)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        allowed = super().allow_request(request, view)
        if getattr(self, "key", None) is not None:
            self._note(request, self.num_requests - len(self.history))
        return allowed

    def peek(self, request) -> tuple[int, int, int] | None:
        """The headers' values without counting a request (answers refused before the
        throttles ran: no key, or a key without the right)."""
        self.rate = self.rate_for(request)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, None)
        if self.key is None:
            return None
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        self._note(request, self.num_requests - len(self.history))
        return getattr(getattr(request, "_request", request), "ratelimit", None)


class KeyRateThrottle(_HeadersMixin, throttling.SimpleRateThrottle):
    """One budget per API key; a signed-in member has one per organisation."""

    scope = "key"

    def rate_for(self, request) -> str:
        limits = request_limits(request)
        if limits is not None and "api_per_minute" in limits.own:
            return f"{limits.api_per_minute}/m"
        return self.get_rate()

    def allow_request(self, request, view):
        if super().allow_request(request, view):
            return True
        error = self.refusal(request)
        organization = getattr(request, "organization", None)
        if organization is not None:
            # the owner learns of it in the audit log (once a day), not only the caller
            try:
                limit_reached_audit(organization=organization, error=error)
            except DatabaseError:
                log.exception("api.limit_audit_failed org=%s", organization.pk)
        raise PlanThrottled(wait=self.wait(), detail=error.message)

    def refusal(self, request) -> LimitReached:
        """The plan's limit, who used it up, and what to do."""
        limits = request_limits(request)
        per_minute = round(self.num_requests * 60 / self.duration)
        if limits is None or limits.api_per_minute != per_minute:
            # the budget of a rate given per second, hour or day, told per minute
            limits = dataclasses.replace(limits or default_limits(), api_per_minute=per_minute)
        who = "this API key" if getattr(request, "api_key", None) is not None else "your session"
        period = _PERIODS.get(self.duration, f"{self.duration} seconds")
        detail = f"{who} made {self.num_requests:,} requests in the last {period}"
        return LimitReached("api_per_minute", limits, detail, status=429)

    def get_cache_key(self, request, view):
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            ident = f"key{api_key.pk}"
        else:
            user = getattr(request, "user", None)
            org = getattr(request, "organization", None)
            if user is None or not getattr(user, "pk", None) or org is None:
                return None
            ident = f"user{user.pk}-org{org.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonRateThrottle(_HeadersMixin, throttling.AnonRateThrottle):
    pass


class RateLimitHeadersMiddleware:
    """Adds the X-RateLimit-* headers to every answer under /api/v1/."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/v1/"):
            return response
        organization = _counted_organization(request, response)
        if organization is not None:
            api_usage_count(organization=organization)
        state = getattr(request, "ratelimit", None)
        if state is None:
            for throttle in (KeyRateThrottle(), AnonRateThrottle()):
                try:
                    state = throttle.peek(request)
                except Exception:  # noqa: BLE001 - headers are a courtesy
                    state = None
                if state is not None:
                    break
        if state is not None:
            for name, value in zip(HEADERS, state, strict=True):
                response[name] = str(value)
        return response


def _counted_organization(request, response):
    """The organisation an API request was authenticated for, or None (no key, a
    bad key, no session). Requests the throttle refused (429) are counted too:
    they reached the API with the organisation's key, and the figure is what the
    organisation asked of the platform, not what it was given. So are 403/404s
    after authentication."""
    drf_request = (getattr(response, "renderer_context", None) or {}).get("request")
    if drf_request is not None and getattr(drf_request, "_authenticator", None) is None:
        # DRF answered without authenticating anyone (a missing or rejected key):
        # the site session's organisation, if any, did not make this call.
        return None
    return getattr(request, "organization", None)


def api_usage_count(*, organization) -> None:
    """One more API request today (UTC) for `organization`: an UPDATE of its row,
    created by the day's first request (two first requests at once: the loser's
    INSERT fails on the unique day and it updates instead). In the organisation's
    scope, so row-level security admits it on PostgreSQL. Never fails the answer."""
    from accounts.models import ApiUsage
    from accounts.tenancy import tenant_context

    today = timezone.now().astimezone(dt.UTC).date()
    try:
        with tenant_context(organization):
            rows = ApiUsage.objects.filter(day=today)
            if rows.update(requests=F("requests") + 1):
                return
            try:
                with transaction.atomic():
                    ApiUsage.objects.create(day=today, requests=1)
            except IntegrityError:
                rows.update(requests=F("requests") + 1)
    except DatabaseError:
        log.exception("api.usage_not_counted org=%s", getattr(organization, "pk", organization))
