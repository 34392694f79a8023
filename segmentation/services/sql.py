"""SQL and date helpers shared by the segmentation and prediction steps, which
read the organisation's orders with raw SQL (always filtered by organisation)."""

from __future__ import annotations

import datetime as dt

from django.db import connection


def table_name(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def epoch_sql(column: str) -> str:
    """Seconds since 1970-01-01 (UTC) of a timestamp column."""
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT)"
    return f"CAST(strftime('%%s', {column}) AS INTEGER)"


def day_sql(column: str) -> str:
    """Days since 1970-01-01 (UTC) of a timestamp column."""
    if connection.vendor == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 86400) AS BIGINT)"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / 86400)"


def float_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"CAST({column} AS DOUBLE PRECISION)"
    return f"CAST({column} AS REAL)"


def latest_data_date() -> dt.date | None:
    """The UTC day of the organisation's newest order or event (CONTRACT: the
    default cut-off is the latest data date, not today), or None."""
    from customers.selectors import latest_data_date as newest

    moment = newest()
    return None if moment is None else moment.astimezone(dt.UTC).date()
