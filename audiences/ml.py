"""Response and lookalike models for audiences."""

from __future__ import annotations

from typing import Any

from core.exceptions import ApplicationError


def response_evaluation(definition: dict[str, Any], *, organization):
    raise ApplicationError("Response audiences are being built.", code="not_ready", status=409)


def lookalike_evaluation(definition: dict[str, Any], *, organization):
    raise ApplicationError("Lookalike audiences are being built.", code="not_ready", status=409)
