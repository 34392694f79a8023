"""The search keys of customers: names lower-cased by the database, compared byte by
byte, so that a search term is one index range over its whole length
(`customers.selectors._starts`).

The database lowers only the ASCII letters (`AsciiLower`), and Python does the same to
a term (`ascii_lower`): no locale decides either side, so the two never disagree (a
Turkish collation's `lower('I')` is 'ı'; in the C collation it is 'i'). Letters outside
ASCII keep their case in the key, and a term's are looked up in each spelling
(`_starts`).

Under row-level security PostgreSQL uses an index only for leakproof conditions:
`key >= 'smi' AND key < 'smj'` is one (text comparisons are leakproof), while
`lower(col) LIKE 'smi%'` is not, whatever index there is; hence a stored column.
"""

from __future__ import annotations

import string

from django.db import models
from django.db.models import Func

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """`text` with A–Z lowered and every other character kept: what `AsciiLower`
    stores."""
    return text.translate(_ASCII_LOWER)


class AsciiLower(Func):
    """LOWER of the ASCII letters only, on every database: PostgreSQL's `lower()` in
    the C collation (whatever the database's own collation), SQLite's built-in
    `lower()` (ASCII only)."""

    function = "LOWER"
    arity = 1

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template='%(function)s(%(expressions)s COLLATE "C")',
            **extra_context,
        )


class ByteOrderCharField(models.CharField):
    """Text compared byte by byte (code point order), whatever the database's collation:
    the C collation on PostgreSQL; SQLite compares bytes already. So the values that
    start with "smi" are exactly those from "smi" up to "smj"; a language's collation
    may sort "smi-x" after "smj" (it weighs letters before punctuation)."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params
