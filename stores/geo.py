"""Placing customers and choosing those near a store or in a place."""

from __future__ import annotations

from typing import Any

from core.exceptions import ApplicationError


def location_evaluation(definition: dict[str, Any], *, organization):
    raise ApplicationError("Location audiences are being built.", code="not_ready", status=409)
