"""Goal audiences scored here rather than by the prediction run: buy_category."""

from __future__ import annotations

from typing import Any

from core.exceptions import ApplicationError


def buy_category_evaluation(definition: dict[str, Any], *, organization):
    raise ApplicationError("Category audiences are being built.", code="not_ready", status=409)
