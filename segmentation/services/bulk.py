"""Bulk writes of a run's per-customer rows (memberships, predictions).

On PostgreSQL the rows go with `COPY` into a temporary staging table, then into
the table with one `INSERT … SELECT` (PostgreSQL refuses `COPY FROM` into a table
under row-level security for the application role; the staging table is not
one, and the `INSERT` is bound by the policies like any other statement). The
rows are formatted as CSV by pandas in one call: no Python loop per row, and no
statement with hundreds of thousands of placeholders for the driver to parse.
On SQLite they go as multi-row parameterised `INSERT`s in chunks.

The organisation is written explicitly (raw SQL is not filtered by the tenant
manager); only table and column names from model metadata are formatted into
the statements, every value is a parameter or COPY data.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction

from core.dbstats import statistics_refresh_after_commit

# rows per COPY write (a block of CSV text) and per SQLite statement at most
COPY_BLOCK_ROWS = 200_000
SQLITE_MAX_PARAMS = 30_000


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def bulk_insert(
    model,
    *,
    fixed: Mapping[str, Any],
    columns: Mapping[str, Sequence | np.ndarray | pd.Series],
    not_null_text: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Insert one row per position of the equally long `columns` (name → values),
    each row also carrying the `fixed` values (e.g. organisation and run). Values
    may be None (NULL). `not_null_text` names text columns whose empty strings
    must stay empty strings (not NULL) on PostgreSQL. `progress(done, total)` is
    called between blocks. Returns the number of rows written."""
    frame = pd.DataFrame({name: _values(v) for name, v in columns.items()})
    total = len(frame)
    if total == 0:
        return 0
    if connection.vendor == "postgresql":
        _pg_insert(model, fixed=fixed, frame=frame, not_null_text=not_null_text, progress=progress)
        # the new run's rows, unknown to the planner until analysed (core.dbstats)
        statistics_refresh_after_commit(model, total)
    else:
        _sqlite_insert(model, fixed=fixed, frame=frame, progress=progress)
    return total


def _values(values) -> Any:
    if isinstance(values, pd.Series):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    return pd.Series(list(values), dtype=object) if not isinstance(values, list) else values


# PostgreSQL's binary COPY: the type of each column a block may carry in binary
_BINARY_TYPES = {"bigint": ">i8", "integer": ">i4", "smallint": ">i2", "double precision": ">f8"}
COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
COPY_BINARY_TRAILER = b"\xff\xff"


def copy_binary_block(columns: Sequence[tuple[np.ndarray, str]]) -> bytes:
    """Rows in PostgreSQL's binary COPY format (without the header and trailer), one
    per position of the equally long arrays, each given with its numpy type
    (">i8", ">i4", ">i2", ">f8"): a field count, then each field's length and value,
    built by numpy in one structured array (nothing per row in Python). No value may
    be missing."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, (_, kind) in enumerate(columns):
        fields += [(f"l{i}", ">i4"), (f"v{i}", kind)]
    n = len(columns[0][0]) if columns else 0
    block = np.empty(n, dtype=np.dtype(fields))
    block["n"] = len(columns)
    for i, (values, kind) in enumerate(columns):
        block[f"l{i}"] = np.dtype(kind).itemsize
        block[f"v{i}"] = values
    return block.tobytes()


def _binary_kinds(model, frame: pd.DataFrame) -> list[str] | None:
    """The binary types of the frame's columns when all are numbers with nothing
    missing, else None (the rows then go as CSV)."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    kinds = []
    for name in frame.columns:
        field = fields.get(name)
        kind = None if field is None else _BINARY_TYPES.get(field.db_type(connection) or "")
        column = frame[name]
        if kind is None or not pd.api.types.is_numeric_dtype(column.dtype) or column.isna().any():
            return None
        kinds.append(kind)
    return kinds


def _pg_insert(model, *, fixed, frame: pd.DataFrame, not_null_text, progress) -> None:
    table = model._meta.db_table
    names = list(frame.columns)
    cols = ", ".join(_quote(c) for c in names)
    digest = hashlib.sha1(",".join(names).encode(), usedforsecurity=False).hexdigest()[:10]
    stage = _quote(f"_bulk_{table}_{digest}"[:63])
    options = "FORMAT csv"
    keep_empty = [c for c in not_null_text if c in names]
    if keep_empty:
        options += f", FORCE_NOT_NULL ({', '.join(_quote(c) for c in keep_empty)})"
    fixed_cols = "".join(f"{_quote(c)}, " for c in fixed)
    fixed_marks = "".join("%s, " for _ in fixed)
    total = len(frame)
    # numbers only (memberships: two ids a row): binary, no text formatted or parsed
    binary = _binary_kinds(model, frame)
    with transaction.atomic(), connection.cursor() as cursor:
        # through Django's cursor: the statement sets the organisation's scope for
        # the transaction, which the driver-level COPY below then runs in
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608 - model metadata
            f"SELECT {cols} FROM {_quote(table)} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        for start in range(0, total, COPY_BLOCK_ROWS):
            block = frame.iloc[start : start + COPY_BLOCK_ROWS]
            # one COPY per block: progress (a statement on this connection, through
            # the job) cannot run while a COPY holds the connection
            if binary is not None:
                data = copy_binary_block(
                    [(block[c].to_numpy(), k) for c, k in zip(names, binary, strict=True)]
                )
                statement = f"COPY {stage} ({cols}) FROM STDIN WITH (FORMAT binary)"
                with cursor.cursor.copy(statement) as copy:
                    copy.write(COPY_BINARY_HEADER + data + COPY_BINARY_TRAILER)
            else:
                buffer = io.StringIO()
                block.to_csv(buffer, header=False, index=False, na_rep="")
                statement = f"COPY {stage} ({cols}) FROM STDIN WITH ({options})"
                with cursor.cursor.copy(statement) as copy:
                    copy.write(buffer.getvalue().encode())
            if progress is not None:
                progress(min(start + COPY_BLOCK_ROWS, total), total)
        cursor.execute(
            f"INSERT INTO {_quote(table)} ({fixed_cols}{cols}) "  # noqa: S608 - model metadata
            f"SELECT {fixed_marks}{cols} FROM {stage}",
            list(fixed.values()),
        )
        cursor.execute(f"TRUNCATE {stage}")


def _sqlite_insert(model, *, fixed, frame: pd.DataFrame, progress) -> None:
    table = _quote(model._meta.db_table)
    names = [*fixed, *frame.columns]
    marks = "(" + ", ".join(["%s"] * len(names)) + ")"
    head = f"INSERT INTO {table} ({', '.join(_quote(c) for c in names)}) VALUES "  # noqa: S608 - model metadata
    per_statement = max(1, SQLITE_MAX_PARAMS // len(names))
    head_values = list(fixed.values())
    # plain Python values (None for missing), as the driver wants them
    data = frame.astype(object).where(frame.notna(), None)
    rows = list(data.itertuples(index=False, name=None))
    total = len(rows)
    with connection.cursor() as cursor:
        for start in range(0, total, per_statement):
            part = rows[start : start + per_statement]
            params = [v for row in part for v in (*head_values, *(_plain(x) for x in row))]
            cursor.execute(head + ", ".join([marks] * len(part)), params)
            if progress is not None and total > per_statement:
                progress(start + len(part), total)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
