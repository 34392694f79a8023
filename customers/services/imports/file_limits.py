"""How much one import may hold: the decompressed size, a line, a field, the rows,
the columns and one record's attributes.

Every limit is read through `import_limits(organization=...)`, so that a plan's
own limits (set by platform staff for an organisation) can be added in one place.
Today every organisation has the settings' values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from core.formats import size_text


@dataclass(frozen=True)
class ImportLimits:
    decompressed_bytes: int  # of a .csv.gz file's content
    line_bytes: int  # one row, with any quoted line breaks inside it
    field_bytes: int  # one cell
    rows: int  # data rows in one file
    columns: int  # in the header
    attributes_bytes: int  # one record's extra values, as stored (JSON)

    def field_problem(self, value: str) -> str | None:
        """Why one cell is refused, or None. Cheap for the usual short cell."""
        if len(value) * 4 <= self.field_bytes:  # at most 4 bytes a character in UTF-8
            return None
        size = len(value.encode("utf-8", "surrogatepass"))
        if size <= self.field_bytes:
            return None
        return f"the value is {size_text(size)}, longer than the limit of {size_text(self.field_bytes)}"

    def attributes_problem(self, attrs: dict, *, what: str = "the attributes") -> str | None:
        """Why a record's attributes are refused, or None."""
        if not attrs:
            return None
        try:
            # Cheap bound for rows of short text values (every row of a file has
            # some): a character takes at most 6 bytes in JSON, a pair 8 more.
            rough = sum(len(k) + len(v) for k, v in attrs.items()) * 6 + 8 * len(attrs) + 2
        except TypeError:  # API values may be numbers, lists or objects
            rough = None
        if rough is not None and rough <= self.attributes_bytes:
            return None
        size = len(
            json.dumps(attrs, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        )
        if size <= self.attributes_bytes:
            return None
        return (
            f"{what} take {size_text(size)}, more than the limit of "
            f"{size_text(self.attributes_bytes)} for one record"
        )


def import_limits(*, organization=None) -> ImportLimits:
    """The limits for `organization`'s imports (the settings' values for now)."""
    return ImportLimits(
        decompressed_bytes=settings.IMPORT_MAX_DECOMPRESSED_BYTES,
        line_bytes=settings.IMPORT_MAX_LINE_BYTES,
        field_bytes=settings.IMPORT_MAX_FIELD_BYTES,
        rows=settings.IMPORT_MAX_ROWS,
        columns=settings.IMPORT_MAX_COLUMNS,
        attributes_bytes=settings.IMPORT_MAX_ATTRIBUTES_BYTES,
    )
