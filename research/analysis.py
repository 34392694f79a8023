"""The research step (helper H2 writes it): read every feedback item of the
organisation, score sentiment, find themes, their trends and index per segment."""

from __future__ import annotations

import datetime as dt
from typing import Any


def research_run(*, organization, as_of: dt.date | None = None, job=None) -> dict[str, Any]:
    raise NotImplementedError
