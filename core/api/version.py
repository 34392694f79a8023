"""The version of the API, on every answer under /api/v1/ as `API-Version`.

The value is the date of the newest entry of docs/api-changelog.md; change both
together. The middleware sits near the top of the stack so that answers given by
other middleware (413 for a too large upload, 400 for a NUL in the query) carry
the header too, as do errors and 500s.
"""

from __future__ import annotations

API_VERSION = "2026-12-01"
HEADER = "API-Version"
PREFIX = "/api/v1/"


class ApiVersionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(PREFIX):
            response[HEADER] = API_VERSION
        return response
