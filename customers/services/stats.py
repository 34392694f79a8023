"""The denormalised order statistics on each customer, kept up to date by writes."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

BATCH = 500


def customer_stats_refresh(*, organization_id: int, customer_ids: Iterable[int]) -> None:
    """Recompute first/last order, purchase count (returns excluded) and net spend."""
    ids = sorted({int(i) for i in customer_ids if i is not None})
    if not ids:
        return
    o = "customers_order"
    match = f"{o}.organization_id = %s AND {o}.customer_id = customers_customer.id"
    with connection.cursor() as cursor:
        for i in range(0, len(ids), BATCH):
            part = ids[i : i + BATCH]
            marks = ", ".join(["%s"] * len(part))
            cursor.execute(
                f"""UPDATE customers_customer SET
                  orders_count = (SELECT COUNT(*) FROM {o} WHERE {match} AND {o}.is_return = %s),
                  total_spent = COALESCE((SELECT SUM({o}.total) FROM {o} WHERE {match}), 0),
                  first_order_at = (SELECT MIN({o}.ordered_at) FROM {o} WHERE {match} AND {o}.is_return = %s),
                  last_order_at = (SELECT MAX({o}.ordered_at) FROM {o} WHERE {match} AND {o}.is_return = %s)
                WHERE organization_id = %s AND id IN ({marks})""",  # noqa: S608 - fixed identifiers
                [
                    organization_id,
                    False,
                    organization_id,
                    organization_id,
                    False,
                    organization_id,
                    False,
                    organization_id,
                    *part,
                ],
            )
