"""API rate limits: one budget per API key and per signed-in member, and the
`X-RateLimit-Limit`, `-Remaining` and `-Reset` headers on every API answer.

A read key's burst must not slow the organisation's write key, so each key has
its own budget (`API_THROTTLE_KEY`, default 1200/min); requests without a key or
session count per address (`API_THROTTLE_ANON`). Reset is the number of seconds
until the oldest request in the window leaves it (the budget is a sliding window).
A refused request is 429 with `Retry-After` (seconds).
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class _HeadersMixin:
    """Reads its rate when used (not when imported, so settings overrides apply) and
    leaves what the headers say on the request."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

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
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        allowed = super().allow_request(request, view)
        if getattr(self, "key", None) is not None:
            self._note(request, self.num_requests - len(self.history))
        return allowed

    def peek(self, request) -> tuple[int, int, int] | None:
        """The headers' values without counting a request (answers refused before the
        throttles ran: no key, or a key without the right)."""
        self.rate = self.get_rate()
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
