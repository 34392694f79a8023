"""Query parameters every API list shares, read the same way everywhere."""

from __future__ import annotations

from core.exceptions import ApplicationError

# The largest id a database column holds (signed 64-bit); larger ones cannot name
# an object, and SQLite refuses to even compare them.
MAX_ID = 2**63 - 1


def id_param(value: str, name: str) -> int:
    """An object id given as a query parameter (`?customer=42`): a whole number from 1
    to 2^63-1, else a 400 naming the parameter."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        raise ApplicationError(
            f"'{name}' must be an id (a whole number).", {"fields": {name: "Not an id."}}
        )
    number = int(text[:20]) if len(text) <= 19 else MAX_ID + 1
    if not 1 <= number <= MAX_ID:
        raise ApplicationError(
            f"'{name}' must be an id from 1 to {MAX_ID}.", {"fields": {name: "Out of range."}}
        )
    return number
