"""What the recommendations step reads, in as few bytes as it needs (issue 15).

`purchase_lines` gives one entry per bought order line — (customer id, product id,
UTC day) — straight from SQL: the join, the filters and the day are computed by
the database, and on PostgreSQL the rows arrive packed in one binary value parsed
by numpy (no Python object per row). It reads the same lines as
``History.order_lines()`` filtered to products bought (quantity above 0, not a
return order, a product named), for the same organisation, cut-off and erased
customers; it takes the `History` so the rules stay one reader's (it could move
into ``customers/history.py`` as ``History.bought_lines()``).

`live_cluster_segments` gives each customer's top-level cluster segment in the live
segmentation run as arrays (one SQL read instead of a dictionary per customer).
"""

from __future__ import annotations

import numpy as np

from customers.history import History, day_sql, table_name

# one bought line as PostgreSQL's aggregate packs it: customer id (int8), product id
# (int8), day (int4), big-endian
_PACKED = np.dtype([("customer", ">i8"), ("product", ">i8"), ("day", ">i4")])


def _bought_sql(history: History, *, packed: bool = False) -> tuple[str, list]:
    from customers.models import Order, OrderLine

    order_t, line_t = table_name(Order), table_name(OrderLine)
    org = history.organization_id
    day = f"CAST({day_sql('o.ordered_at')} AS INTEGER)"
    if packed:  # every row packed into one binary string: one value to transfer
        what = (
            "string_agg(int8send(CAST(o.customer_id AS BIGINT)) || "
            f"int8send(CAST(l.product_id AS BIGINT)) || int4send({day}), ''::bytea)"
        )
    else:
        what = f"CAST(o.customer_id AS BIGINT), CAST(l.product_id AS BIGINT), {day}"
    sql = (
        f"SELECT {what} "  # noqa: S608 - tables from model metadata
        f"FROM {line_t} l JOIN {order_t} o ON o.id = l.order_id "
        "WHERE l.organization_id = %s AND o.organization_id = %s "
        "AND o.customer_id IS NOT NULL AND o.ordered_at < %s AND o.status = 'paid' "
        "AND NOT o.is_return AND l.quantity > 0 AND l.product_id IS NOT NULL"
    )
    return sql, [org, org, history._param(history.cutoff)]


def purchase_lines(
    history: History, *, progress: tuple[float, float] = (5, 20)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer ids, product ids, UTC day numbers) of every bought line up to the
    history's cut-off, erased customers left out. Order is unspecified.

    On PostgreSQL the rows come back as one value, packed by the database
    (`string_agg` of `int8send`/`int4send`: 20 bytes a line, 200 MB for 10 million
    lines) and read by numpy without a Python object per row — fetching the rows
    (or a COPY stream, one message a row) cost several times more."""
    start, span = progress
    db = history._db
    history.job.progress(start, "Reading purchases")
    if db.vendor == "postgresql":
        sql, params = _bought_sql(history, packed=True)
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            packed = cursor.fetchone()[0]
        rows = np.frombuffer(bytes(packed or b""), dtype=_PACKED)
        del packed
        customers = rows["customer"].astype(np.int64)
        products = rows["product"].astype(np.int64)
        days = rows["day"].astype(np.int64)
        del rows
    else:
        sql, params = _bought_sql(history)
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            data = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 3)
        customers, products, days = data[:, 0], data[:, 1], data[:, 2]
    history.job.progress(start + span, f"Read {customers.size:,} purchased lines")
    erased = history.erased_ids()
    if erased.size and customers.size:
        keep = ~np.isin(customers, erased)
        customers, products, days = customers[keep], products[keep], days[keep]
    return customers, products, days


def live_cluster_segments(customer_ids: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """(segment id per customer of sorted `customer_ids`, -1 without one; {segment id:
    name}) from the live segmentation run: each customer's top-level cluster segment
    (the lowest id if ever several), as `segmentation.selectors.customer_segments`
    names it."""
    from django.db import connection

    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    out = np.full(customer_ids.size, -1, dtype=np.int64)
    run_id = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    if run_id is None or customer_ids.size == 0:
        return out, {}
    segments = dict(
        Segment.objects.filter(kind=SegmentKind.CLUSTER, parent__isnull=True).values_list(
            "pk", "name"
        )
    )
    sql, params = (
        SegmentMembership.objects.filter(run_id=run_id, segment_id__in=list(segments))
        .values_list("customer_id", "segment_id")
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
    if rows.size:
        # the lowest segment id per customer, then placed by customer
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        rows = rows[order]
        first = np.r_[True, rows[1:, 0] != rows[:-1, 0]]
        rows = rows[first]
        at = np.searchsorted(customer_ids, rows[:, 0])
        at = np.minimum(at, max(customer_ids.size - 1, 0))
        found = customer_ids[at] == rows[:, 0]
        out[at[found]] = rows[found, 1]
    used = set(np.unique(out[out >= 0]).tolist())
    return out, {sid: name for sid, name in segments.items() if sid in used}
