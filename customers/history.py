"""One reader of an organisation's history for every model step.

Segments, predictions and the steps that come next (recommendations, audiences,
research) read the organisation's customers, orders, order lines, events,
product sales and feedback through `History`, not through SQL of their own:

    history = History(organization, as_of)  # checks the scope agrees
    lines = history.order_lines()  # one row per order line, returns netted
    purchases = history.purchases()  # one entry per purchase, for customer models

What every read does the same way:
- it runs only for the current organisation: the constructor calls
  `scope_check(organization=...)` (a different organisation's scope raises
  `ScopeMismatch`, none raises `TenantNotSet`), and every statement also filters
  `organization_id` itself (raw SQL is not filtered by the tenant manager; on
  PostgreSQL row-level security binds it too). In the platform's
  `unscoped_context()` the reads go through the platform connection;
- it stops at `as_of`, a UTC calendar day, included: nothing at or after
  midnight UTC of the next day is read (`cutoff`), so `--as-of` means the same
  orders in every step;
- erased customers are left out (their ids are dropped even if an erasure is half
  done), while guest orders stay where the figure is about products, not people
  (`product_sales`);
- spend is counted in the organisation's currency alone: an order in another
  currency (one the import was given no rate for) is a purchase, but its amount
  is 0 in `purchases()` and its lines' amounts are 0 in `order_lines()` (and
  `product_lines()`), as in the customers' `total_spent` — never added to the
  organisation's money;
- it is raw SQL for speed (timestamps and amounts converted in SQL or in one
  pandas call, nothing built row by row in Python), fetched in chunks, with job
  progress between chunks where a read can be long. Only table names from model
  metadata and fixed snippets are formatted into the statements; every value is
  a parameter.

Reads are cached on the reader: `product_lines()` reuses `order_lines()`, and the
erased ids are read once.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from django.db import connection, connections, transaction
from pandas.api.types import union_categoricals

from accounts.tenancy import bypass_active, platform_alias, scope_check
from core.jobs import NULL_JOB, JobHandle

from .sampling import CustomerSample

FETCH_CHUNK = 100_000
# ids per packed read (`History._packed`): a value of at most ~80 MB for order lines
PACKED_CHUNK_IDS = 2_000_000
# (send function, SQL type, numpy type) of each kind a packed column may be
_PACKED_KINDS = {
    "i8": ("int8send", "BIGINT", ">i8"),
    "i4": ("int4send", "INTEGER", ">i4"),
    "f8": ("float8send", "DOUBLE PRECISION", ">f8"),
}
MAX_ATTRIBUTE_COLUMNS = 20
EVENT_WINDOW_DAYS = 91
# Purchases are counted towards this many rows for the progress bar (a count
# would cost a second pass over the orders).
PURCHASES_PROGRESS_ROWS = 2_000_000


# --- SQL snippets (PostgreSQL and SQLite) ---------------------------------------------
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


def _ts_sql(column: str) -> str:
    # PostgreSQL converts in C. On SQLite, parsing the stored text in pandas beats
    # both strftime() and the driver's per-row datetime converter (skipped by the
    # cast, which drops the column's declared type).
    return epoch_sql(column) if connection.vendor == "postgresql" else f"CAST({column} AS TEXT)"


def day_cutoff(as_of: dt.date) -> dt.datetime:
    """The first instant after the UTC day `as_of`."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)


def timestamps(values: pd.Series) -> pd.DatetimeIndex:
    """UTC timestamps from what the database returned: epoch seconds (PostgreSQL,
    converted in SQL) or Django's SQLite text ("YYYY-MM-DD HH:MM:SS[.ffffff]")."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return pd.DatetimeIndex(
            pd.to_datetime(values.to_numpy(dtype=np.float64), unit="s", utc=True)
        )
    return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601", utc=True))


def blank_to_none(values: pd.Series) -> pd.Categorical:
    """Text as a categorical; blank and missing values become missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = [str(c) for c in values.cat.categories]
        keep_levels = [i for i, u in enumerate(levels) if u.strip()]
        remap = np.full(len(levels) + 1, -1, dtype=np.int64)
        remap[keep_levels] = np.arange(len(keep_levels))
        return pd.Categorical.from_codes(
            remap[values.cat.codes.to_numpy().astype(np.int64)],
            categories=[levels[i] for i in keep_levels],
        )
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    keep = [i for i, u in enumerate(uniques) if isinstance(u, str) and u.strip()]
    remap = np.full(len(uniques) + 1, -1, dtype=np.int64)  # remap[-1] is -1 (missing)
    remap[keep] = np.arange(len(keep))
    return pd.Categorical.from_codes(remap[codes], categories=[uniques[i] for i in keep])


# --- what the reads return --------------------------------------------------------------
@dataclass
class Purchases:
    """Purchases up to `as_of`, one entry per order (customer id, UTC day, value)."""

    customer_ids: np.ndarray
    days: np.ndarray  # datetime64[D]
    amounts: np.ndarray
    returns_excluded: int = 0

    @property
    def n_orders(self) -> int:
        return int(self.customer_ids.size)


class History:
    """The organisation's data up to and including the UTC day `as_of`.

    `organization` is an Organization or its id; `job` receives progress reports
    during the long reads (each read takes the span of the job's bar it may use),
    between chunks of `chunk` rows.
    """

    def __init__(
        self,
        organization,
        as_of: dt.date,
        *,
        job: JobHandle = NULL_JOB,
        chunk: int = FETCH_CHUNK,
        sample: CustomerSample | None = None,
    ):
        scope_check(organization=organization)
        self.organization_id: int = (
            organization if isinstance(organization, int) else organization.pk
        )
        self.as_of = as_of
        self.cutoff = day_cutoff(as_of)
        self.job = job
        self.chunk = chunk
        # platform code (unscoped_context) reads through the platform login: raw SQL
        # is not routed, and as the application role it would see no row
        self._db = connections[platform_alias()] if bypass_active() else connection
        self._erased: np.ndarray | None = None
        self._lines: pd.DataFrame | None = None
        self._currency: str | None = None
        # the audience preview's estimate on a big organisation: the customer reads
        # (customers, purchases, order lines, events) keep the sample's customers only
        self.sample = sample

    # --- plumbing ----------------------------------------------------------------------
    def _in_sample(self, column: str) -> str:
        """` AND <column is a customer of the sample>`, or nothing without a sample."""
        return f" AND {self.sample.sql(column)}" if self.sample is not None else ""

    def _param(self, value: dt.datetime):
        return self._db.ops.adapt_datetimefield_value(value)

    def _rows(self, sql: str, params: list) -> list[tuple]:
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _frame(
        self,
        sql: str,
        params: list,
        names: list[str],
        *,
        progress: tuple[float, float, int, str] | None = None,
        dtypes: dict[str, str] | None = None,
    ) -> pd.DataFrame:
        """A query's rows as a data frame, fetched in chunks (progress between them).

        With `dtypes` (a type for every column: "int64", "float64" or "category"
        for text) on PostgreSQL, the rows are streamed with `COPY (query) TO
        STDOUT` as CSV and parsed by pandas a chunk at a time: no Python tuple per
        row, and the driver never holds the whole result (a plain query's result
        is buffered in full by libpq before the first fetch). Text columns come
        back as categoricals whose missing and blank values are both missing."""
        if dtypes is not None and self._db.vendor == "postgresql":
            return self._copy_frame(sql, params, names, dtypes=dtypes, progress=progress)
        parts = []
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            done = 0
            while True:
                rows = cursor.fetchmany(self.chunk)
                if not rows:
                    break
                parts.append(pd.DataFrame.from_records(rows, columns=names, coerce_float=True))
                done += len(rows)
                if progress is not None:
                    start, span, total, what = progress
                    self.job.progress(
                        start + span * min(done / max(total, 1), 1.0),
                        f"Reading {what}: {done:,} of {total:,}",
                    )
        if not parts:
            return pd.DataFrame({n: [] for n in names})
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def _copy_frame(
        self,
        sql: str,
        params: list,
        names: list[str],
        *,
        dtypes: dict[str, str],
        progress: tuple[float, float, int, str] | None,
    ) -> pd.DataFrame:
        parts: list[pd.DataFrame] = []
        # integers may be NULL in the rows: parse as float, cast at the end
        parse = {i: ("float64" if dtypes[n] == "int64" else dtypes[n]) for i, n in enumerate(names)}

        def flush(rows: list) -> None:
            frame = pd.read_csv(
                io.BytesIO(b"".join(rows)),
                header=None,
                names=list(range(len(names))),
                dtype=parse,
                keep_default_na=False,
                na_values={i: [""] for i in range(len(names))},
                engine="c",
            )
            parts.append(frame)

        done = 0
        # through Django's cursor first: it sets the organisation's scope for the
        # transaction the driver-level COPY then runs in
        with transaction.atomic(using=self._db.alias), self._db.cursor() as cursor:
            cursor.execute("SELECT 1")
            with cursor.cursor.copy(
                f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)",
                [self._pg_copy_value(v) for v in params],
            ) as copy:
                # no progress report in here: it is a statement on this connection,
                # which the COPY holds until its last row (the read is reported
                # when it ends)
                rows: list = []
                for row in copy:  # one row per block
                    rows.append(row)
                    if len(rows) >= self.chunk:
                        flush(rows)
                        done += len(rows)
                        rows = []
                if rows:
                    flush(rows)
                    done += len(rows)
        if progress is not None:
            start, span, total, what = progress
            self.job.progress(
                start + span * min(done / max(total, 1), 1.0),
                f"Reading {what}: {done:,} of {max(total, done):,}",
            )
        if len(parts) > 1:
            # categoricals of different chunks have different levels: united, not
            # turned into text
            frame = pd.DataFrame(
                {
                    i: (
                        union_categoricals([p[i] for p in parts])
                        if parse[i] == "category"
                        else np.concatenate([p[i].to_numpy() for p in parts])
                    )
                    for i in range(len(names))
                }
            )
        elif parts:
            frame = parts[0]
        else:
            frame = pd.DataFrame({i: pd.Series([], dtype=parse[i]) for i in range(len(names))})
        frame.columns = names
        for name in names:
            kind = dtypes[name]
            if kind == "int64" and not frame[name].isna().any():
                frame[name] = frame[name].to_numpy(dtype=np.int64)
            elif kind == "category" and not isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].astype("category")
        return frame

    @staticmethod
    def _pg_copy_value(value):
        return value

    def _packed(
        self,
        *,
        table: str,
        columns: list[tuple[str, str, str, str]],
        where: str,
        params: list,
        column_params: tuple = (),
        text: str | None = None,
    ) -> dict[str, np.ndarray | pd.Categorical]:
        """PostgreSQL: the rows of `SELECT <columns> FROM <table> t WHERE
        t.organization_id = <organisation> AND <where>` as numpy arrays, one per column.

        `columns` are (name, SQL expression, kind: "i8", "i4" or "f8", SQL value for
        NULL); the statement's parameters are `column_params`, then `params` (of
        `where`). `text` names one text column of `t` to read as well, as a categorical
        (blank and missing are missing): it travels as its place among the
        organisation's distinct values of it. The database packs each row's values in
        binary (`int8send`, …) and joins a range of ids' rows into one value
        (`string_agg`), fetched in binary and read by numpy: no Python object, text or
        CSV parse per row. A stream (COPY, or a plain query's rows) costs a Python step
        per row: reading the orders and order lines of a million customers took 55 s
        of a 128 s segments step that way. Missing values must not reach the
        concatenation (a NULL would drop the whole row), so each expression is wrapped
        in COALESCE with its NULL value. The rows come a range of PACKED_CHUNK_IDS ids
        of `t` at a time, in no set order within a range (as a plain read's)."""
        org = self.organization_id
        columns = list(columns)
        joins, join_params, levels = "", [], []
        if text is not None:
            levels = self._distinct_text(table=table, column=text)
            # each value's 1-based place in the list of levels (0: blank or missing)
            joins = (
                f"LEFT JOIN unnest(%s::text[]) WITH ORDINALITY AS codes(v, n) ON codes.v = t.{text}"
            )
            join_params = [levels]
            columns.append((text, "codes.n", "i4", "0"))
        parts = []
        for _name, expr, kind, missing in columns:
            send, sql_type, _ = _PACKED_KINDS[kind]
            parts.append(f"{send}(COALESCE(CAST({expr} AS {sql_type}), {missing}))")
        packed = " || ".join(parts)
        dtype = np.dtype([(name, _PACKED_KINDS[kind][2]) for name, _, kind, _ in columns])
        chunks: list[np.ndarray] = []
        with transaction.atomic(using=self._db.alias), self._db.cursor() as cursor:
            # through Django's cursor first: it sets the organisation's scope for the
            # transaction the driver-level statements then run in
            cursor.execute(
                f"SELECT MIN(id), MAX(id) FROM {table} WHERE organization_id = %s",  # noqa: S608 - tables from model metadata
                [org],
            )
            low, high = cursor.fetchone()
            # a plain driver cursor on the same connection (Django's binds parameters
            # on the client, which cannot ask for binary results)
            driver = psycopg.Cursor(self._db.connection)
            statement = (
                f"SELECT string_agg({packed}, ''::bytea) FROM {table} t {joins} "  # noqa: S608 - tables from model metadata
                f"WHERE t.organization_id = %s AND t.id >= %s AND t.id < %s AND ({where})"
            )
            start = low
            while low is not None and start <= high:
                end = start + PACKED_CHUNK_IDS
                driver.execute(
                    statement,
                    [*column_params, *join_params, org, start, end, *params],
                    binary=True,
                )
                value = driver.fetchone()[0]
                if value:
                    chunks.append(np.frombuffer(value, dtype=dtype))
                start = end
        rows = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
        native = {"i8": np.int64, "i4": np.int32, "f8": np.float64}
        found: dict[str, np.ndarray | pd.Categorical] = {
            name: rows[name].astype(native[kind]) for name, _, kind, _ in columns
        }
        if text is not None:
            codes = rows[text].astype(np.int64) - 1
            found[text] = pd.Categorical.from_codes(
                codes, categories=levels
            ).remove_unused_categories()
        return found

    def _distinct_text(self, *, table: str, column: str) -> list[str]:
        """The distinct non-blank values of a text column of the organisation's rows."""
        rows = self._rows(
            f"SELECT DISTINCT {column} FROM {table} "  # noqa: S608 - tables from model metadata
            f"WHERE organization_id = %s AND {column} <> ''",
            [self.organization_id],
        )
        return sorted(r[0] for r in rows if r[0] is not None)

    # --- reads ---------------------------------------------------------------------------
    def own_currency(self) -> str:
        """The organisation's currency (upper case): the only one spend is counted in."""
        if self._currency is None:
            from accounts.models import Organization

            rows = self._rows(
                f"SELECT currency FROM {table_name(Organization)} WHERE id = %s",  # noqa: S608 - tables from model metadata
                [self.organization_id],
            )
            self._currency = ((rows[0][0] if rows else "") or "").upper()
        return self._currency

    def erased_ids(self) -> np.ndarray:
        """Ids of the organisation's erased customers (tombstones), read once."""
        if self._erased is None:
            from .models import Customer

            rows = self._rows(
                f"SELECT id FROM {table_name(Customer)} "  # noqa: S608 - tables from model metadata
                "WHERE organization_id = %s AND erased_at IS NOT NULL",
                [self.organization_id],
            )
            self._erased = np.array([r[0] for r in rows], dtype=np.int64)
        return self._erased

    def purchases(self, *, progress: tuple[float, float] = (2, 10)) -> Purchases:
        """One entry per purchase up to `as_of`, for the customer models.

        Guest orders, erased customers' orders, return orders and orders with a
        negative total are left out; the number of returns left out is reported.
        Erasure detaches a person's orders already; their ids are dropped here too
        so that a half-finished erasure can never leak into a model (a join would
        do the same at twice the cost of reading the orders).
        """
        from .models import Order

        order_t = table_name(Order)
        # paid orders only: pending, cancelled and refunded ones are no purchase
        where = (
            "o.organization_id = %s AND o.customer_id IS NOT NULL AND o.ordered_at < %s "
            "AND o.status = 'paid'" + self._in_sample("o.customer_id")
        )
        params = [self.organization_id, self._param(self.cutoff)]
        erased = self.erased_ids()
        # an order in another currency is a purchase worth 0 of the organisation's money
        spend = "CASE WHEN o.currency = '' OR o.currency = %s THEN o.total ELSE 0 END"
        returns = int(
            self._rows(
                f"SELECT COUNT(*) FROM {order_t} o WHERE {where} "  # noqa: S608 - tables from model metadata
                "AND (o.is_return OR o.total < 0)",
                params,
            )[0][0]
        )
        start, span = progress
        if self._db.vendor == "postgresql":
            # packed by the database (`_packed`): no Python step per order
            self.job.progress(start, "Reading orders")
            read = self._packed(
                table=order_t,
                columns=[
                    ("customer_id", "t.customer_id", "i8", "0"),
                    ("epoch", "EXTRACT(EPOCH FROM t.ordered_at)", "i8", "0"),
                    ("amount", spend.replace("o.", "t."), "f8", "'NaN'"),
                ],
                column_params=(self.own_currency(),),
                where="t.customer_id IS NOT NULL AND t.ordered_at < %s AND t.status = 'paid' "
                "AND NOT t.is_return AND t.total >= 0" + self._in_sample("t.customer_id"),
                params=params[1:],
            )
            self.job.progress(start + span, f"Read {read['customer_id'].size:,} orders")
            data = np.column_stack([read["customer_id"], read["epoch"], read["amount"]]).astype(
                np.float64
            )
        else:
            data = self._purchase_rows(spend, where, params, progress)
        if erased.size:
            data = data[~np.isin(data[:, 0].astype(np.int64), erased)]
        return Purchases(
            customer_ids=data[:, 0].astype(np.int64),
            days=(data[:, 1].astype(np.int64) // 86400).astype("datetime64[D]"),
            amounts=np.nan_to_num(data[:, 2]),
            returns_excluded=returns,
        )

    def _purchase_rows(self, spend: str, where: str, params: list, progress) -> np.ndarray:
        from .models import Order

        order_t = table_name(Order)
        start, span = progress
        frame = self._frame(
            f"SELECT o.customer_id, {epoch_sql('o.ordered_at')}, {float_sql(spend)} "  # noqa: S608 - tables from model metadata
            f"FROM {order_t} o WHERE {where} AND NOT o.is_return AND o.total >= 0",
            [self.own_currency(), *params],
            ["customer_id", "epoch", "amount"],
            progress=(start, span, PURCHASES_PROGRESS_ROWS, "orders"),
            dtypes={"customer_id": "float64", "epoch": "float64", "amount": "float64"},
        )
        return frame.to_numpy(dtype=np.float64).reshape(-1, 3) if len(frame) else np.zeros((0, 3))

    def order_lines(self, *, progress: tuple[float, float] = (8, 28)) -> pd.DataFrame:
        """Customers' order lines up to `as_of`, in order-id order, returns netted.

        Columns: `customer_id`, `order_id`, `ordered_at` (UTC), `quantity` and
        `amount` (negative for returned goods: a return order's lines and lines with
        a negative quantity, whatever sign the file gave them), `category` and
        `channel` (categoricals, blank is missing) and `product_id` (-1: none).
        Guest orders and erased customers' orders are left out. Orders and lines
        are read separately and joined in memory (several times faster than a
        join in SQLite). Read once per reader.
        """
        if self._lines is not None:
            return self._lines
        from .models import OrderLine

        org = self.organization_id
        line_t = table_name(OrderLine)
        erased = self.erased_ids()
        total_lines = int(
            self._rows(
                f"SELECT COUNT(*) FROM {line_t} WHERE organization_id = %s",  # noqa: S608 - tables from model metadata
                [org],
            )[0][0]
        )
        start, span = progress
        if self._db.vendor == "postgresql":
            orders, raw = self._packed_orders_and_lines(total_lines, progress)
        else:
            orders, raw = self._order_and_line_rows(total_lines, progress)
        if len(erased):
            orders = orders[~orders["customer_id"].isin(erased)]
        orders = orders.sort_values("order_id", kind="stable")
        order_ids = orders["order_id"].to_numpy(dtype=np.int64)
        self.job.progress(start + span, f"Read {len(raw):,} order lines; preparing features")

        # keep the lines of customers' orders up to the cut-off (guest orders, later
        # orders and erased customers' orders are not in `orders`)
        line_order = raw["order_id"].to_numpy(dtype=np.int64)
        pos = np.searchsorted(order_ids, line_order)
        pos[pos >= len(order_ids)] = 0
        keep = (order_ids[pos] == line_order) if len(order_ids) else np.zeros(len(raw), dtype=bool)
        raw = raw[keep]
        pos = pos[keep]
        is_return = orders["is_return"].to_numpy(dtype=bool)[pos]
        quantity = raw["quantity"].to_numpy(dtype=np.float64)
        amount = np.nan_to_num(raw["amount"].to_numpy(dtype=np.float64))
        # returns reduce revenue and are not purchases, whatever sign the file gave them
        quantity = np.where(is_return, -np.abs(quantity), quantity)
        amount = np.where(is_return | (quantity < 0), -np.abs(amount), amount)
        # lines of an order in another currency (no rate given at import): bought,
        # but not the organisation's money, so they add nothing to spend
        foreign = orders["foreign"].to_numpy(dtype=np.int64)[pos] == 1
        amount = np.where(foreign, 0.0, amount)
        product_ids = pd.to_numeric(raw["product_id"], errors="coerce")
        self._lines = pd.DataFrame(
            {
                "customer_id": orders["customer_id"].to_numpy(dtype=np.int64)[pos],
                "order_id": raw["order_id"].to_numpy(dtype=np.int64),
                "ordered_at": timestamps(orders["ordered_at"])[pos],
                "quantity": quantity,
                "amount": amount,
                "category": blank_to_none(raw["category"]),
                "channel": blank_to_none(orders["channel"]).take(pos),
                "product_id": product_ids.fillna(-1).to_numpy(dtype=np.int64),
            }
        )
        return self._lines

    def _order_and_line_rows(
        self, total_lines: int, progress: tuple[float, float]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The orders and lines `order_lines` joins, as plain rows (SQLite)."""
        from .models import Order, OrderLine

        org = self.organization_id
        order_t, line_t = table_name(Order), table_name(OrderLine)
        start, span = progress
        orders = self._frame(
            f"SELECT id, customer_id, {_ts_sql('ordered_at')}, channel, "  # noqa: S608 - tables from model metadata
            "CASE WHEN is_return THEN 1 ELSE 0 END, "
            "CASE WHEN currency = '' OR currency = %s THEN 0 ELSE 1 END "
            f"FROM {order_t} "
            "WHERE organization_id = %s AND customer_id IS NOT NULL AND ordered_at < %s "
            # pending, cancelled and refunded orders: no purchase
            f"AND status = 'paid'{self._in_sample('customer_id')}",
            [self.own_currency(), org, self._param(self.cutoff)],
            ["order_id", "customer_id", "ordered_at", "channel", "is_return", "foreign"],
            dtypes={
                "order_id": "int64",
                "customer_id": "int64",
                "ordered_at": "int64",
                "channel": "category",
                "is_return": "int64",
                "foreign": "int64",
            },
        )
        self.job.progress(start, f"Read {len(orders):,} orders")

        # a sample's lines: those of its customers' orders (the rest are dropped below
        # anyway; this spares reading them)
        sampled = (
            f" AND order_id IN (SELECT id FROM {order_t} WHERE organization_id = %s "  # noqa: S608 - tables from model metadata
            f"AND customer_id IS NOT NULL{self._in_sample('customer_id')})"
            if self.sample is not None
            else ""
        )
        raw = self._frame(
            f"SELECT order_id, quantity, {float_sql('amount')}, category, product_id FROM {line_t} "  # noqa: S608 - tables from model metadata
            f"WHERE organization_id = %s{sampled}",
            [org, org] if sampled else [org],
            ["order_id", "quantity", "amount", "category", "product_id"],
            progress=(start, span - 1, total_lines, "order lines"),
            dtypes={
                "order_id": "int64",
                "quantity": "float64",
                "amount": "float64",
                "category": "category",
                "product_id": "int64",
            },
        )
        return orders, raw

    def _packed_orders_and_lines(
        self, total_lines: int, progress: tuple[float, float]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The same orders and lines as `_order_and_line_rows`, packed by PostgreSQL
        (`_packed`); the text columns (channel, category) travel as their place in the
        list of the organisation's distinct values."""
        from .models import Order, OrderLine

        org = self.organization_id
        order_t, line_t = table_name(Order), table_name(OrderLine)
        start, _span = progress
        self.job.progress(start, f"Reading orders and {total_lines:,} order lines")
        read = self._packed(
            table=order_t,
            columns=[
                ("order_id", "t.id", "i8", "0"),
                ("customer_id", "t.customer_id", "i8", "0"),
                ("ordered_at", "EXTRACT(EPOCH FROM t.ordered_at)", "i8", "0"),
                ("is_return", "CASE WHEN t.is_return THEN 1 ELSE 0 END", "i8", "0"),
                (
                    "foreign",
                    "CASE WHEN t.currency = '' OR t.currency = %s THEN 0 ELSE 1 END",
                    "i8",
                    "0",
                ),
            ],
            column_params=(self.own_currency(),),
            text="channel",
            # pending, cancelled and refunded orders: no purchase
            where="t.customer_id IS NOT NULL AND t.ordered_at < %s AND t.status = 'paid'"
            + self._in_sample("t.customer_id"),
            params=[self.cutoff],
        )
        names = ["order_id", "customer_id", "ordered_at", "channel", "is_return", "foreign"]
        orders = pd.DataFrame({name: read[name] for name in names})
        self.job.progress(start, f"Read {len(orders):,} orders")
        sampled = (
            f"t.order_id IN (SELECT id FROM {order_t} WHERE organization_id = %s "  # noqa: S608 - tables from model metadata
            f"AND customer_id IS NOT NULL{self._in_sample('customer_id')})"
            if self.sample is not None
            else "true"
        )
        lines = self._packed(
            table=line_t,
            columns=[
                ("order_id", "t.order_id", "i8", "0"),
                ("quantity", "t.quantity", "f8", "'NaN'"),
                ("amount", "t.amount", "f8", "'NaN'"),
                ("product_id", "t.product_id", "i8", "-1"),
            ],
            text="category",
            where=sampled,
            params=[org] if self.sample is not None else [],
        )
        names = ["order_id", "quantity", "amount", "category", "product_id"]
        raw = pd.DataFrame({name: lines[name] for name in names})
        return orders, raw

    def products(self) -> pd.DataFrame:
        """The organisation's products: `product_id`, `sku`, `name`, `category`,
        `merchandise` (False for postage, fees, adjustments) and `hidden` (by the owner)."""
        from .models import Product

        rows = self._rows(
            f"SELECT id, sku, name, category, merchandise, hidden FROM {table_name(Product)} "  # noqa: S608 - tables from model metadata
            "WHERE organization_id = %s ORDER BY id",
            [self.organization_id],
        )
        names = ["product_id", "sku", "name", "category", "merchandise", "hidden"]
        frame = pd.DataFrame.from_records(rows, columns=names)
        return frame.astype({"product_id": np.int64, "merchandise": bool, "hidden": bool})

    def product_lines(self) -> pd.DataFrame | None:
        """The order lines of merchandise the owner has not hidden, for favourites:
        `customer_id`, `product` (a categorical of product names, the sku when a
        product has none; two products of one name are one category), `amount`,
        `ordered_at`. None when no line names a product."""
        lines = self.order_lines()
        line_products = lines["product_id"].to_numpy()
        if not (line_products >= 0).any():
            return None
        # postage, fees, adjustments and hidden products are nobody's favourite
        products = self.products()
        goods = products[products["merchandise"] & ~products["hidden"]]
        names_by_id = {
            int(pid): (name or sku)
            for pid, name, sku in zip(goods["product_id"], goods["name"], goods["sku"], strict=True)
        }
        has_product = np.isin(line_products, np.fromiter(names_by_id, dtype=np.int64))
        codes, uniques = pd.factorize(line_products[has_product])
        name_codes, names = pd.factorize(
            pd.Index([names_by_id.get(int(u)) or f"#{int(u)}" for u in uniques], dtype=object)
        )
        return pd.DataFrame(
            {
                "customer_id": lines["customer_id"].to_numpy()[has_product],
                "product": pd.Categorical.from_codes(name_codes[codes], categories=names),
                "amount": lines["amount"].to_numpy()[has_product],
                "ordered_at": lines["ordered_at"].array[has_product],
            }
        )

    def customers(self, *, max_attributes: int = MAX_ATTRIBUTE_COLUMNS) -> pd.DataFrame:
        """Customers not erased: `customer_id`, `signup_at` (UTC), `birth_date`,
        `gender`, `country` (blank is missing), and the `max_attributes` most
        filled-in custom attributes as `attr:<key>` columns (numbers where nine in
        ten values are). Every customer is read, whenever they signed up: a profile
        has no date."""
        from .models import Customer

        rows = self._frame(
            f"SELECT id, {_ts_sql('signup_at')}, birth_date, gender, country, attributes "  # noqa: S608 - tables from model metadata
            f"FROM {table_name(Customer)} WHERE organization_id = %s AND erased_at IS NULL"
            f"{self._in_sample('id')}",
            [self.organization_id],
            ["customer_id", "signup_at", "birth_date", "gender", "country", "attributes"],
        )
        if not len(rows):
            return pd.DataFrame({"customer_id": np.empty(0, dtype=np.int64)})
        frame = pd.DataFrame(
            {
                "customer_id": rows["customer_id"].to_numpy(dtype=np.int64),
                "signup_at": timestamps(rows["signup_at"]),
                "birth_date": pd.to_datetime(rows["birth_date"].astype(object), errors="coerce"),
                "gender": rows["gender"].astype(object).replace("", None),
                "country": rows["country"].astype(object).replace("", None),
            }
        )
        extra = _attribute_columns(rows["attributes"].tolist(), max_attributes)
        if extra is not None:
            frame = pd.concat([frame, extra], axis=1)
        return frame

    def events(
        self, *, days: int = EVENT_WINDOW_DAYS, segmenta_events: bool = True
    ) -> pd.DataFrame:
        """Events of the last `days` days up to `as_of` (erased customers' left
        out): `customer_id`, `type` (a categorical), `occurred_at` (UTC). Without
        `segmenta_events`, only the business's own: the events Segmenta writes itself
        (messages sent and opened, offers redeemed, surveys answered...) left out."""
        from .models import SEGMENTA_EVENT_TYPES, Event

        own = sorted(SEGMENTA_EVENT_TYPES) if not segmenta_events else []
        not_own = f" AND type NOT IN ({', '.join(['%s'] * len(own))})" if own else ""
        ev = self._frame(
            f"SELECT customer_id, type, {_ts_sql('occurred_at')} FROM {table_name(Event)} "  # noqa: S608 - tables from model metadata; placeholders only
            f"WHERE organization_id = %s AND occurred_at >= %s AND occurred_at < %s{not_own}"
            f"{self._in_sample('customer_id')}",
            [
                self.organization_id,
                self._param(self.cutoff - dt.timedelta(days=days)),
                self._param(self.cutoff),
                *own,
            ],
            ["customer_id", "type", "occurred_at"],
        )
        erased = self.erased_ids()
        if len(ev) and len(erased):
            ev = ev[~ev["customer_id"].isin(erased)]
        return pd.DataFrame(
            {
                "customer_id": ev["customer_id"].to_numpy(dtype=np.int64),
                "type": blank_to_none(ev["type"]),
                "occurred_at": timestamps(ev["occurred_at"]),
            }
        )

    def product_sales(self, *, weeks: int) -> pd.DataFrame:
        """Units per sku and UTC day over the last `weeks` weeks up to `as_of`, from
        every order line (guest orders included: the figure is about products),
        returns netted, summed in SQL: `sku`, `date` (datetime64[D]), `units`.
        Postage, fees, adjustments and hidden products are left out."""
        from .models import Order, OrderLine, Product

        order_t, line_t = table_name(Order), table_name(OrderLine)
        product_t = table_name(Product)
        start = dt.datetime.combine(
            self.as_of - dt.timedelta(days=7 * weeks - 1), dt.time(0, 0), tzinfo=dt.UTC
        )
        day = day_sql("o.ordered_at")
        org = self.organization_id
        rows = self._rows(
            f"SELECT l.sku, {day}, "  # noqa: S608 - tables from model metadata
            "SUM(CASE WHEN o.is_return THEN -ABS(l.quantity) ELSE l.quantity END) "
            f"FROM {line_t} l JOIN {order_t} o ON o.id = l.order_id "
            "WHERE l.organization_id = %s AND o.organization_id = %s "
            "AND o.ordered_at >= %s AND o.ordered_at < %s AND l.sku <> '' "
            "AND o.status = 'paid' "
            f"AND l.sku NOT IN (SELECT p.sku FROM {product_t} p WHERE p.organization_id = %s "
            "AND (p.merchandise = %s OR p.hidden = %s)) "
            f"GROUP BY l.sku, {day}",
            [org, org, self._param(start), self._param(self.cutoff), org, False, True],
        )
        if not rows:
            return pd.DataFrame({"sku": [], "date": np.zeros(0, "datetime64[D]"), "units": []})
        skus, days, units = zip(*rows, strict=True)
        return pd.DataFrame(
            {
                "sku": np.asarray(skus, dtype=object),
                "date": np.asarray(days, dtype=np.int64).astype("datetime64[D]"),
                "units": np.asarray(units, dtype=np.float64),
            }
        )

    def feedback(self, *, progress: tuple[float, float] | None = None) -> pd.DataFrame:
        """Reviews, survey answers and support messages given up to `as_of`, oldest
        first: `feedback_id`, `customer_id` (-1: anonymous), `created_at` (UTC),
        `source`, `rating` (NaN: none) and `text`. Erased customers' feedback is
        left out (erasure deletes it; a half-finished one must not leak)."""
        from .models import Feedback

        org = self.organization_id
        params = [org, self._param(self.cutoff)]
        where = "WHERE organization_id = %s AND created_at < %s"
        total = 0
        if progress is not None:
            total = int(
                self._rows(
                    f"SELECT COUNT(*) FROM {table_name(Feedback)} {where}",  # noqa: S608 - tables from model metadata
                    params,
                )[0][0]
            )
        rows = self._frame(
            f"SELECT id, customer_id, {_ts_sql('created_at')}, source, rating, text "  # noqa: S608 - tables from model metadata
            f"FROM {table_name(Feedback)} {where} ORDER BY created_at, id",
            params,
            ["feedback_id", "customer_id", "created_at", "source", "rating", "text"],
            progress=None if progress is None else (*progress, total, "feedback"),
        )
        customer_ids = pd.to_numeric(rows["customer_id"], errors="coerce").fillna(-1)
        customer_ids = customer_ids.to_numpy(dtype=np.int64)
        erased = self.erased_ids()
        keep = ~np.isin(customer_ids, erased) if erased.size else np.ones(len(rows), dtype=bool)
        rows = rows[keep]
        return pd.DataFrame(
            {
                "feedback_id": rows["feedback_id"].to_numpy(dtype=np.int64),
                "customer_id": customer_ids[keep],
                "created_at": timestamps(rows["created_at"]),
                "source": rows["source"].astype(object).to_numpy(),
                "rating": pd.to_numeric(rows["rating"], errors="coerce").to_numpy(dtype=np.float64),
                "text": rows["text"].astype(object).to_numpy(),
            }
        )


def _attribute_columns(values, limit: int = MAX_ATTRIBUTE_COLUMNS) -> pd.DataFrame | None:
    """Custom attributes (JSON) as columns: the most filled-in keys only."""
    parsed = []
    counts: dict[str, int] = {}
    for value in values:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value not in ("", "{}") else {}
            except ValueError:
                value = {}
        if not isinstance(value, dict):
            value = {}
        parsed.append(value)
        for key in value:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    reserved = {"customer_id", "signup_at", "birth_date", "gender", "country"}
    out = {}
    for key in keys:
        if key in reserved:
            continue
        column = [p.get(key) for p in parsed]
        series = pd.Series(column, dtype=object)
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() >= 0.9 * series.notna().sum() and series.notna().any():
            out[f"attr:{key}"] = numeric.astype("float64")
        else:
            out[f"attr:{key}"] = series.where(series.notna(), None).map(
                lambda v: v if v is None else str(v)
            )
    return pd.DataFrame(out) if out else None
