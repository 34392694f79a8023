"""Fresh planner statistics after a big write (PostgreSQL).

A pipeline step writes a new run's rows in bulk (a million memberships, predictions,
recommendations, an audience of half a million). Until the table is analysed, the
planner knows nothing of the new run's id and guesses one row for it, so the pages
reading that run pick the wrong index: at 1,000,000 customers an audience page took
2.4 s and the API's customer list 0.7 s instead of tens of milliseconds. Autovacuum
analyses in time only where it is on and has come round to the table.

So after such a write commits, the table is analysed (ANALYZE reads a sample of
about 30,000 rows: a second or so). The application role may not analyse a table it
does not own, so it calls `segmenta_analyze(table)`, a SECURITY DEFINER function the
migrating role owns (created after every migrate, `accounts.signals`), which analyses
only Segmenta's tenant tables. Nothing is returned to the caller, and `pg_stats` hides
tables under row-level security from the application role, so no organisation learns
another's values from the statistics.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection, transaction

log = logging.getLogger("segmenta.db")

# Smaller writes change too little of a table's statistics to be worth a refresh
# (many small organisations' nightly runs would each analyse the tables again).
ANALYZE_AFTER_ROWS = 10_000


def statistics_refresh_after_commit(model, rows: int) -> bool:
    """Analyse `model`'s table once the current transaction commits, when `rows`
    rows were written to it (PostgreSQL; a no-op elsewhere). Returns whether one
    was scheduled."""
    if connection.vendor != "postgresql" or rows < ANALYZE_AFTER_ROWS:
        return False
    table = model._meta.db_table
    transaction.on_commit(lambda: statistics_refresh(table))
    return True


def statistics_refresh(table: str) -> None:
    """Analyse one tenant table now. A failure is logged, never raised: the write it
    follows has committed, and stale statistics only cost speed."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT segmenta_analyze(%s)", [table])
    except DatabaseError:
        log.warning("db.analyze_failed table=%s", table, exc_info=True)
