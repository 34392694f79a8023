"""Repair of values stored before the checks of `limits.py` that no page can read.

An amount beyond `numeric(18,4)` (stored as such only by SQLite) or a timestamp
outside the years Python can hold (a BC date, or year 10000 after conversion to
UTC, stored only by PostgreSQL) makes every page, list and export that reads the
row fail. Orders, events and feedback holding one are deleted (they could never
be shown, and imports now refuse them); a customer's unreadable `signup_at` is
cleared; the order statistics of the customers concerned are recomputed. Run by
migration 0004 for every organisation; safe to run again.
"""

from __future__ import annotations

from django.db import connection

from .imports.db import BulkDb
from .stats import customer_stats_refresh

LIMIT = 10**14  # limits.MONEY_LIMIT
# Python's datetime holds years 1 to 9999; PostgreSQL stores far more.
FIRST, BEYOND = "0001-01-01 00:00:00+00", "9999-12-31 00:00:00+00"
BAD_ORDERS = """SELECT id, customer_id FROM customers_order WHERE organization_id = %s AND (
  ABS(total) >= %s OR id IN (
    SELECT order_id FROM customers_orderline WHERE organization_id = %s
    AND (ABS(amount) >= %s OR ABS(unit_price) >= %s)))"""
# Timestamps compare as text on SQLite, which never stored such a one anyway.
BAD_ORDER_TIMES = """SELECT id, customer_id FROM customers_order
  WHERE organization_id = %s AND (ordered_at < %s OR ordered_at > %s)"""
BAD_SPENDERS = (
    "SELECT id FROM customers_customer WHERE organization_id = %s AND ABS(total_spent) >= %s"
)
PG_CLEARS = {
    "events": "DELETE FROM customers_event WHERE organization_id = %s "
    "AND (occurred_at < %s OR occurred_at > %s)",
    "feedback": "DELETE FROM customers_feedback WHERE organization_id = %s "
    "AND (created_at < %s OR created_at > %s)",
    "signups": "UPDATE customers_customer SET signup_at = NULL WHERE organization_id = %s "
    "AND (signup_at < %s OR signup_at > %s)",
}


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def unreadable_values_repair(*, organization_id: int) -> dict[str, int]:
    """Delete or clear what cannot be read back; {what: how many}."""
    org = organization_id
    postgres = connection.vendor == "postgresql"
    db = BulkDb(org)
    orders = dict(_rows(BAD_ORDERS, [org, LIMIT, org, LIMIT, LIMIT]))
    if postgres:
        orders.update(_rows(BAD_ORDER_TIMES, [org, FIRST, BEYOND]))
    db.delete_in("customers_orderline", "order_id", list(orders))
    db.delete_in("customers_order", "id", list(orders))
    done = {"orders": len(orders), "events": 0, "feedback": 0, "signups": 0}
    customers = {c for c in orders.values() if c}
    customers.update(c for (c,) in _rows(BAD_SPENDERS, [org, LIMIT]))
    if postgres:
        for key, sql in PG_CLEARS.items():
            done[key] = db.execute(sql, [org, FIRST, BEYOND])
    customer_stats_refresh(organization_id=org, customer_ids=customers)
    return done
