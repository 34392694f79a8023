"""What changed this month (helper H5 writes it)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def compute_changes(*, organization, as_of: dt.date) -> list[dict[str, Any]]:
    return []


def dashboard_panel(*, request) -> dict | None:
    return None
