"""How much one import may hold: the decompressed size, a line, a field, the rows,
the columns and one record's attributes.

Every limit is read through `import_limits(organization=...)`: the rows, the
columns and the attributes are the organisation's plan's (`accounts.limits`, set
by platform staff, else the settings' defaults); the decompressed size, a line
and a field stay the platform's settings (they protect the workers, not a plan).

Where the organisation has a limit of its own, a refusal is `LimitReached`
(code `limit_reached`, in the plan's words); under the defaults the messages
are the ones the import always gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings

from accounts.limits import LimitReached, Limits, default_limits, limits_for
from core.exceptions import ApplicationError
from core.formats import size_text


@dataclass(frozen=True)
class ImportLimits:
    decompressed_bytes: int  # of a .csv.gz file's content
    line_bytes: int  # one row, with any quoted line breaks inside it
    field_bytes: int  # one cell
    rows: int  # data rows in one file
    columns: int  # in the header
    attributes_bytes: int  # one record's extra values, as stored (JSON)
    # the organisation's plan the values come from (its `own` limits say whose words
    # a refusal takes)
    plan: Limits = field(default_factory=default_limits, compare=False, repr=False)

    def too_many_rows(self) -> ApplicationError:
        """The refusal of a file with more than `rows` data rows (nothing imported)."""
        from .reader import Unreadable

        fields = {"file": "Too many rows."}
        if "import_rows" in self.plan.own:
            return LimitReached(
                "import_rows",
                self.plan,
                f"the file has more than {self.rows:,} rows, so nothing was imported; "
                "split it into smaller files",
                fields=fields,
            )
        return Unreadable(
            f"The file has more than {self.rows:,} rows, the most your plan imports "
            "at once; nothing was imported. Split it into smaller files.",
            {"fields": fields},
        )

    def too_many_columns(self, columns: int) -> ApplicationError:
        from .reader import Unreadable

        fields = {"file": "Too many columns."}
        if "import_columns" in self.plan.own:
            return LimitReached(
                "import_columns",
                self.plan,
                f"the file has {columns:,} columns; remove the columns you do not need",
                fields=fields,
            )
        return Unreadable(
            f"The file has {columns:,} columns; at most {self.columns:,} are accepted. "
            "Remove the columns you do not need.",
            {"fields": fields},
        )

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
    """The limits for `organization`'s imports (an Organization or its id; None:
    the platform's defaults)."""
    plan = limits_for(organization) if organization is not None else default_limits()
    return ImportLimits(
        decompressed_bytes=settings.IMPORT_MAX_DECOMPRESSED_BYTES,
        line_bytes=settings.IMPORT_MAX_LINE_BYTES,
        field_bytes=settings.IMPORT_MAX_FIELD_BYTES,
        rows=plan.import_rows,
        columns=plan.import_columns,
        attributes_bytes=plan.attributes_bytes,
        plan=plan,
    )


def upload_size_check(*, organization, size: int, own_only: bool = False) -> None:
    """Refuse a file of `size` bytes larger than the organisation's upload limit:
    413, `limit_reached` when its plan has a limit of its own, else `too_large`
    (the platform's `UPLOAD_MAX_BYTES`). `own_only`: only a limit of its own (an
    operator's file read in place is not an upload through the web)."""
    plan = limits_for(organization)
    if "upload_bytes" in plan.own:
        if size > plan.upload_bytes:
            raise LimitReached(
                "upload_bytes",
                plan,
                f"the file is {size_text(size)}; compress it as .csv.gz or split it",
                status=413,
                fields={"file": "Too large."},
            )
        return
    if not own_only and size > settings.UPLOAD_MAX_BYTES:
        limit = settings.UPLOAD_MAX_BYTES
        raise ApplicationError(
            f"The file is {size_text(size)}; the limit is {size_text(limit)}. "
            "Compress it as .csv.gz or split it.",
            {"fields": {"file": "Too large."}},
            status=413,
            code="too_large",
        )


def upload_max_bytes(*, organization) -> int:
    """The largest upload the organisation may send (its plan's, within the
    platform's outer cap `UPLOAD_MAX_BYTES` that core.uploads enforces first)."""
    plan = limits_for(organization) if organization is not None else default_limits()
    return min(plan.upload_bytes, settings.UPLOAD_MAX_BYTES)
