"""OpenAPI generation: every operation documents the error answers it can give.

Each view lists only its success answers; the 4xx answers every endpoint can give
(bad input, no key, no right, no such object or page, a conflict, too large, the
wrong content type, too many requests) are added here once, all with the one
error shape `{"error": {"code", "message", "fields"}}` (`core.api.exceptions`).
A view that documents one of these codes itself keeps its description; it gets
the error body if it gave none.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. `not_found`.")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.CharField(),
        help_text="Field name -> what is wrong with it (empty when no single field is at fault).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


ERROR_RESPONSES = {
    "400": "The request is not valid; `error.fields` names each field at fault.",
    "401": "No valid API key or session.",
    "403": "This key or member may not do this (a read key writing, or a role without the right).",
    "404": "No such object in this organisation, or no such page of a list.",
    "405": "This method is not allowed here.",
    "409": "The object's current state does not allow this (for example a finished job), or "
    "the Idempotency-Key was used for another request.",
    "413": "The body or upload is too large.",
    "415": "The body's content type is not accepted here.",
    "429": "Too many requests for this key; wait `Retry-After` seconds and retry.",
}


# Every answer under /api/v1/ carries the caller's rate budget (accounts/api/throttling.py).
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per window (a minute) for this key or member.",
    "X-RateLimit-Remaining": "Requests left in the current window.",
    "X-RateLimit-Reset": "Seconds until the oldest request of the window leaves it.",
}
RETRY_AFTER = {"Retry-After": "Seconds to wait before trying again."}


def _headers(names: dict[str, str]) -> dict:
    return {
        name: {"schema": {"type": "integer"}, "description": description}
        for name, description in names.items()
    }


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (up to 255 characters) of yours. A retry with the same key "
    "gets the first answer (status and body) without applying the write again; the same key "
    "with another request answers 409 `idempotency_key_reused`. Keys belong to the API key "
    "that sent them and are kept for 24 hours.",
)


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            parameters.append(IDEMPOTENCY_HEADER)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in ERROR_RESPONSES.items():
            error = self._get_response_for_code(
                OpenApiResponse(response=ErrorSerializer, description=description),
                code,
                direction=direction,
            )
            existing = responses.get(code)
            if existing is None:
                responses[code] = error
            elif "content" not in existing:
                existing["content"] = error["content"]
        if direction == "response":
            for code, response in responses.items():
                extra = {**RATE_LIMIT_HEADERS, **(RETRY_AFTER if code == "429" else {})}
                response.setdefault("headers", {}).update(_headers(extra))
        return responses
