"""SQL and date helpers shared by the steps that write with raw SQL. Reads of an
organisation's history go through `customers.history.History`; the snippets live
there and are re-exported here for the writers."""

from __future__ import annotations

import datetime as dt

from customers.history import day_sql, epoch_sql, float_sql, table_name

__all__ = ["day_sql", "epoch_sql", "float_sql", "latest_data_date", "table_name"]


def latest_data_date() -> dt.date | None:
    """The UTC day of the organisation's newest order or event (CONTRACT: the
    default cut-off is the latest data date, not today), or None."""
    from customers.selectors import latest_data_date as newest

    moment = newest()
    return None if moment is None else moment.astimezone(dt.UTC).date()
