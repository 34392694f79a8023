"""Bulk reads and writes for imports, one implementation per database.

PostgreSQL: rows are streamed with `COPY` into a temporary staging table, then
moved with `INSERT … SELECT … ON CONFLICT` (PostgreSQL refuses `COPY FROM` into
a table under row-level security, and the staging table is private to the
connection). SQLite: `executemany` of `INSERT … ON CONFLICT`.

Raw SQL here always names the organisation explicitly, in every WHERE clause
and every inserted row, besides the row-level security policies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db import connection

BATCH = 500  # ids per IN (...) list


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _sqlite_value(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return _json(value)
    return value


def _pg_value(value):
    if isinstance(value, dict | list):
        return _json(value)
    return value


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


class BulkDb:
    """Reads and writes rows of one organisation's tenant tables."""

    def __init__(self, organization_id: int):
        self.org = organization_id
        self.postgres = connection.vendor == "postgresql"

    # --- reads -------------------------------------------------------------------

    def select(
        self, table: str, key: str, keys: Iterable, columns: Sequence[str], where: str = ""
    ) -> list[tuple]:
        """Rows (key, *columns) whose `key` is in `keys`."""
        keys = list(keys)
        out: list[tuple] = []
        cols = ", ".join(quote(c) for c in (key, *columns))
        with connection.cursor() as cursor:
            for i in range(0, len(keys), BATCH):
                part = keys[i : i + BATCH]
                marks = ", ".join(["%s"] * len(part))
                cursor.execute(
                    f"SELECT {cols} FROM {quote(table)} WHERE organization_id = %s "  # noqa: S608 - identifiers are ours
                    f"AND {quote(key)} IN ({marks}){where}",
                    [self.org, *part],
                )
                out.extend(cursor.fetchall())
        return out

    def execute(self, sql: str, params: Sequence = ()) -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    @staticmethod
    def sqlite_value(value):
        return _sqlite_value(value)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        if not rows:
            return
        if not self.postgres:
            rows = [[_sqlite_value(v) for v in row] for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def delete_in(self, table: str, key: str, keys: Iterable) -> None:
        keys = list(keys)
        with connection.cursor() as cursor:
            for i in range(0, len(keys), BATCH):
                part = keys[i : i + BATCH]
                marks = ", ".join(["%s"] * len(part))
                cursor.execute(
                    f"DELETE FROM {quote(table)} WHERE organization_id = %s AND {quote(key)} IN ({marks})",  # noqa: S608
                    [self.org, *part],
                )

    # --- writes ------------------------------------------------------------------

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence],
        *,
        conflict: str,
        update: Sequence[str] | dict[str, str] | None,
        returning: bool = True,
    ) -> dict[str, int]:
        """Insert rows or, on a conflict of (organization_id, `conflict`), update
        the `update` columns (a list: take the new value; a dict: column → SQL
        expression; None: do nothing). Returns {conflict value: id} of the rows."""
        if not rows:
            return {}
        t = quote(table)
        if update is None:
            action = "DO NOTHING"
        else:
            exprs = (
                update if isinstance(update, dict) else {c: f"EXCLUDED.{quote(c)}" for c in update}
            )
            action = "DO UPDATE SET " + ", ".join(f"{quote(c)} = {e}" for c, e in exprs.items())
        target = f"(organization_id, {quote(conflict)})"
        cols = ", ".join(quote(c) for c in columns)
        key_index = list(columns).index(conflict)
        if self.postgres:
            stage = self._stage(table, columns, rows)
            sql = (
                f"INSERT INTO {t} (organization_id, {cols}) SELECT %s, {cols} FROM {stage} "  # noqa: S608
                f"ON CONFLICT {target} {action}"
            )
            if returning and update is not None:
                with connection.cursor() as cursor:
                    cursor.execute(sql + f" RETURNING {quote(conflict)}, id", [self.org])
                    return dict(cursor.fetchall())
            self.execute(sql, [self.org])
        else:
            marks = ", ".join(["%s"] * (len(columns) + 1))
            sql = f"INSERT INTO {t} (organization_id, {cols}) VALUES ({marks}) ON CONFLICT {target} {action}"  # noqa: S608
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql, [[self.org, *(_sqlite_value(v) for v in row)] for row in rows]
                )
        if not returning:
            return {}
        keys = [row[key_index] for row in rows]
        return dict(self.select(table, conflict, keys, ["id"]))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        if not rows:
            return
        t = quote(table)
        cols = ", ".join(quote(c) for c in columns)
        if self.postgres:
            stage = self._stage(table, columns, rows)
            self.execute(
                f"INSERT INTO {t} (organization_id, {cols}) SELECT %s, {cols} FROM {stage}",  # noqa: S608
                [self.org],
            )
            return
        marks = ", ".join(["%s"] * (len(columns) + 1))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {t} (organization_id, {cols}) VALUES ({marks})",  # noqa: S608
                [[self.org, *(_sqlite_value(v) for v in row)] for row in rows],
            )

    def _stage(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> str:
        """COPY rows into a temporary table shaped like `table`'s `columns`."""
        digest = hashlib.sha1(",".join(columns).encode(), usedforsecurity=False).hexdigest()[:10]
        stage = quote(f"_seg_stage_{table}_{digest}"[:63])
        cols = ", ".join(quote(c) for c in columns)
        with connection.cursor() as cursor:
            # Lives as long as the connection (or until a rollback), emptied at every
            # commit and before each use (one round trip for both).
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608
                f"SELECT {cols} FROM {quote(table)} WITH NO DATA; TRUNCATE {stage}"
            )
            json_cols = [i for i, v in enumerate(rows[0]) if isinstance(v, dict | list)]
            with cursor.cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                if json_cols:
                    for row in rows:
                        copy.write_row([_pg_value(v) for v in row])
                else:
                    for row in rows:
                        copy.write_row(row)
        return stage
