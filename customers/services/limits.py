"""What the columns (and Python) can hold, checked before anything is stored.

A value that passes a row's own checks can still break the organisation once
stored: a line amount or a total beyond `numeric(18,4)` fails on PostgreSQL
(losing the rest of the chunk) and, on SQLite, is stored and then fails every
page that reads it; a timestamp far outside the calendar becomes a BC date, or
overflows when converted to UTC; a far-future one moves the organisation's
"now". Imports, bulk writes and corrections all check against these limits and
reject the row with the reason instead.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

# numeric(18,4): 14 digits before the point.
MONEY_LIMIT = Decimal(10) ** 14
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
# Later than this after "now" (the import's start) is not plausible data.
FUTURE_TOLERANCE = dt.timedelta(days=1)


def money_problem(value: Decimal | None) -> str | None:
    """Why `value` cannot be stored as an amount, or None."""
    if value is None:
        return None
    if not value.is_finite() or abs(value) >= MONEY_LIMIT:
        return f"{value:,.2f} is too large (amounts and totals must be below 100,000,000,000,000)"
    return None


def latest_plausible(now: dt.datetime | None = None) -> dt.datetime:
    from django.utils import timezone

    return (now or timezone.now()) + FUTURE_TOLERANCE


def moment_problem(
    value: dt.datetime | dt.date | None, *, now: dt.datetime | None = None
) -> str | None:
    """Why a timestamp is outside 1900-01-01 … one day after `now` (after conversion
    to UTC), or a date is after that day; None when it is fine."""
    if value is None:
        return None
    latest = latest_plausible(now)
    if not isinstance(value, dt.datetime):
        # A calendar date (a birth date) holds any year since 1 (Ada Lovelace's
        # 1815-12-10 is a fine one); only a future one is not plausible.
        if value > latest.date():
            return f"{value.isoformat()} is in the future"
        return None
    try:
        utc = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except (OverflowError, ValueError):
        return f"{value.isoformat()} is outside the dates we can store (1900-01-01 to tomorrow)"
    if utc < EARLIEST:
        return f"{utc.date().isoformat()} is before 1900-01-01"
    if utc > latest:
        return (
            f"{utc.date().isoformat()} is in the future (more than a day after "
            f"{latest - FUTURE_TOLERANCE:%Y-%m-%d %H:%M} UTC)"
        )
    return None
