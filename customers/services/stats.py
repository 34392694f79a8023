"""The denormalised order statistics on each customer, kept up to date by writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

BATCH = 500


def organization_currency(organization_id: int) -> str:
    """The organisation's currency: the one customer spend is counted in."""
    from accounts.models import Organization

    code = (
        Organization.objects.filter(pk=organization_id).values_list("currency", flat=True).first()
    )
    return (code or "").upper()


def customer_stats_refresh(*, organization_id: int, customer_ids: Iterable[int | None]) -> None:
    """Recompute first/last order, purchase count (returns excluded) and net spend,
    from paid orders only (pending, cancelled and refunded orders are no purchase).
    The spend counts orders in the organisation's currency (or naming none) alone:
    an order in another currency is a purchase, but its amount is never added to
    the organisation's (an import converts it when the owner gives a rate)."""
    ids = sorted({int(i) for i in customer_ids if i is not None})
    if not ids:
        return
    own = organization_currency(organization_id)
    with connection.cursor() as cursor:
        for i in range(0, len(ids), BATCH):
            part = ids[i : i + BATCH]
            marks = ", ".join(["%s"] * len(part))
            # One pass over the batch's orders (UPDATE … FROM: PostgreSQL, SQLite ≥ 3.33)...
            cursor.execute(
                f"""UPDATE customers_customer SET
                  orders_count = s.purchases, total_spent = s.spent,
                  first_order_at = s.first_at, last_order_at = s.last_at
                FROM (
                  SELECT customer_id,
                    SUM(CASE WHEN is_return OR status <> 'paid' THEN 0 ELSE 1 END) AS purchases,
                    SUM(CASE WHEN status = 'paid' AND (currency = '' OR currency = %s)
                      THEN total ELSE 0 END) AS spent,
                    MIN(CASE WHEN is_return OR status <> 'paid' THEN NULL ELSE ordered_at END)
                      AS first_at,
                    MAX(CASE WHEN is_return OR status <> 'paid' THEN NULL ELSE ordered_at END)
                      AS last_at
                  FROM customers_order
                  WHERE organization_id = %s AND customer_id IN ({marks})
                  GROUP BY customer_id
                ) AS s
                WHERE customers_customer.organization_id = %s
                  AND customers_customer.id = s.customer_id""",  # noqa: S608 - fixed identifiers
                [own, organization_id, *part, organization_id],
            )
            # ...and customers left without any order.
            cursor.execute(
                f"""UPDATE customers_customer SET orders_count = 0, total_spent = 0,
                  first_order_at = NULL, last_order_at = NULL
                WHERE organization_id = %s AND id IN ({marks}) AND NOT EXISTS (
                  SELECT 1 FROM customers_order o
                  WHERE o.organization_id = %s AND o.customer_id = customers_customer.id)""",  # noqa: S608
                [organization_id, *part, organization_id],
            )


@dataclass
class StatsDelta:
    """What new orders add to one customer's statistics."""

    purchases: int = 0
    spent: Decimal = Decimal(0)
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def add(self, *, ordered_at: dt.datetime, total: Decimal, is_return: bool) -> None:
        self.spent += total
        if not is_return:
            self.purchases += 1
            self.first = ordered_at if self.first is None else min(self.first, ordered_at)
            self.last = ordered_at if self.last is None else max(self.last, ordered_at)


_ADD_SET = """
  orders_count = customers_customer.orders_count + d.purchases,
  total_spent = customers_customer.total_spent + d.spent,
  first_order_at = CASE
    WHEN d.first_at IS NULL THEN customers_customer.first_order_at
    WHEN customers_customer.first_order_at IS NULL OR customers_customer.first_order_at > d.first_at
    THEN d.first_at ELSE customers_customer.first_order_at END,
  last_order_at = CASE
    WHEN d.last_at IS NULL THEN customers_customer.last_order_at
    WHEN customers_customer.last_order_at IS NULL OR customers_customer.last_order_at < d.last_at
    THEN d.last_at ELSE customers_customer.last_order_at END"""


def customer_stats_add(*, db, deltas: dict[int, StatsDelta]) -> None:
    """Add new orders to the statistics without re-reading the customers' orders:
    an import of new orders costs one UPDATE per chunk, not one aggregate over each
    customer's whole history. `db` is an imports BulkDb."""
    if not deltas:
        return
    rows = [(cid, d.purchases, d.spent, d.first, d.last) for cid, d in deltas.items()]
    with connection.cursor() as cursor:
        if db.postgres:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _seg_stats_delta (id bigint, purchases integer, "
                "spent numeric, first_at timestamptz, last_at timestamptz) ON COMMIT DELETE ROWS; "
                "TRUNCATE _seg_stats_delta"
            )
            with cursor.cursor.copy("COPY _seg_stats_delta FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"UPDATE customers_customer SET {_ADD_SET} FROM _seg_stats_delta AS d "  # noqa: S608
                "WHERE customers_customer.organization_id = %s AND customers_customer.id = d.id",
                [db.org],
            )
            return
    # SQLite: the same statement over the rows as VALUES (column1..column5).
    for i in range(0, len(rows), BATCH):
        part = rows[i : i + BATCH]
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(part))
        params = [db.sqlite_value(v) for row in part for v in row]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE customers_customer SET {_ADD_SET} FROM (
                  SELECT column1 AS id, column2 AS purchases, column3 AS spent,
                         column4 AS first_at, column5 AS last_at FROM (VALUES {values})
                ) AS d
                WHERE customers_customer.organization_id = %s AND customers_customer.id = d.id""",  # noqa: S608
                [*params, db.org],
            )


def customers_touch_where_runs_differ(
    *, table: str, columns: Iterable[str], organization_id: int, run_id: int, previous_run_id
) -> None:
    """Mark changed (`CustomerChange`, for integrations reading
    `customers/?updated_since=`) the customers whose rows of `table` (its `columns`,
    `customer_id` first) differ between run `run_id` and `previous_run_id` (every
    customer of the run when there is none). One statement: the rows in one run and
    not the other are found by the database (`EXCEPT`, which counts two nulls as
    equal), never read into Python, and each changed customer's row of the narrow
    change table is written or moved to now (the customer rows are not rewritten).
    `table` comes from model metadata only."""
    from django.utils import timezone

    from customers.history import table_name
    from customers.models import CustomerChange

    fields = ", ".join(connection.ops.quote_name(c) for c in columns)
    rows = f"SELECT {fields} FROM {table} WHERE organization_id = %s AND run_id = %s"  # noqa: S608 - model metadata
    if previous_run_id is None:
        changed = (
            f"SELECT DISTINCT customer_id FROM {table} WHERE organization_id = %s AND run_id = %s"  # noqa: S608 - model metadata, E501
        )
        params: list = [organization_id, run_id]
    else:
        # UNION: each customer once (an upsert may not touch a row twice)
        changed = (
            f"SELECT customer_id FROM ({rows} EXCEPT {rows}) AS added "  # noqa: S608 - model metadata
            f"UNION SELECT customer_id FROM ({rows} EXCEPT {rows}) AS removed"
        )
        params = [organization_id, run_id, organization_id, previous_run_id]
        params += [organization_id, previous_run_id, organization_id, run_id]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        # `WHERE true`: SQLite reads "SELECT … ON CONFLICT" as a join without it
        cursor.execute(
            f"INSERT INTO {table_name(CustomerChange)} (organization_id, customer_id, changed_at) "  # noqa: S608 - model metadata
            f"SELECT %s, customer_id, %s FROM ({changed}) AS changed WHERE true "
            "ON CONFLICT (organization_id, customer_id) DO UPDATE SET changed_at = excluded.changed_at",
            [organization_id, now, *params],
        )
        written = cursor.rowcount
    from core.dbstats import statistics_refresh_after_commit

    statistics_refresh_after_commit(CustomerChange, written)
