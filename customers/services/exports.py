"""CSV exports that are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator

from .. import fields as customer_fields

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe.
    Numbers we write ourselves (never text) are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class _Echo:
    def write(self, value):
        return value


# (header, model field): the import's column names (customers/fields.py).
CUSTOMER_EXPORT_COLUMNS = [(f.file_column, f.name) for f in customer_fields.listed_fields()]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return csv_safe(json.dumps(value, ensure_ascii=False)) if value else ""
    return csv_safe(value)


def customers_csv_rows(queryset) -> Iterator[str]:
    """Lines of a customers CSV (the import's column names), streamed."""
    writer = csv.writer(_Echo())
    yield writer.writerow([h for h, _ in CUSTOMER_EXPORT_COLUMNS])
    fields = [f for _, f in CUSTOMER_EXPORT_COLUMNS]
    for row in queryset.values_list(*fields).iterator(chunk_size=2000):
        yield writer.writerow([_cell(v) for v in row])
