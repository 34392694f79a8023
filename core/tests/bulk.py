"""Helpers the tests of several apps use to build their data."""

from __future__ import annotations

from django.db import connection


def insert_rows(model, columns: list[str], rows: list[tuple], chunk: int = 20_000) -> None:
    """Many rows of `model` in few statements (test data sets of thousands of rows).
    On PostgreSQL one `INSERT … SELECT FROM unnest()` of one array a column per chunk
    (a VALUES list of 30,000 parameters took the PostgreSQL suite's set-ups 30–50 s a
    test); elsewhere multi-row VALUES."""
    ops = connection.ops
    table = ops.quote_name(model._meta.db_table)
    cols = ", ".join(ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            by_column = {f.column: f for f in model._meta.concrete_fields}
            arrays = ", ".join(f"%s::{by_column[c].db_type(connection)}[]" for c in columns)
            sql = f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays})"  # noqa: S608 - model metadata
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                cursor.execute(sql, [list(values) for values in zip(*part, strict=True)])
            return
        placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
        per_statement = max(1, min(chunk, 30_000 // len(columns)))
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            sql = f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholders] * len(part))}"  # noqa: S608 - model metadata
            cursor.execute(sql, [v for row in part for v in row])
