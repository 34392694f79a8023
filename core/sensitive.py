"""Which customer columns are sensitive: left out of every model by default.

The contract's list: `birth_date`, `gender`, and any attribute whose name holds,
as a whole word (snake_case, kebab-case, spaces or camelCase), one of the words
below — plus whatever the owner marks sensitive in Settings
(`Organization.sensitive_attributes`). Targeting on these invites discrimination,
so models use one only when the owner says so with a recorded reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ALWAYS_SENSITIVE = frozenset({"birth_date", "gender"})
SENSITIVE_WORDS = frozenset(
    {
        "age",
        "birth",
        "sex",
        "gender",
        "marital",
        "religion",
        "ethnicity",
        "race",
        "nationality",
        "health",
        "disability",
        "orientation",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def name_words(name: str) -> list[str]:
    """`Year_Birth` -> ["year", "birth"]; `maritalStatus` -> ["marital", "status"]."""
    words: list[str] = []
    for chunk in _SEPARATORS.split(str(name)):
        words.extend(w.lower() for w in _CAMEL.split(chunk) if w)
    return words


def is_sensitive(name: str, marked: Iterable[str] = ()) -> bool:
    """True for a column the contract or the owner calls sensitive.

    `name` may carry the features' `attr:` prefix; `marked` are the owner's names.
    """
    bare = str(name).removeprefix("attr:")
    lowered = bare.strip().lower()
    if lowered in ALWAYS_SENSITIVE:
        return True
    if lowered in {str(m).strip().lower().removeprefix("attr:") for m in marked}:
        return True
    return any(word in SENSITIVE_WORDS for word in name_words(bare))


def sensitive_columns(names: Iterable[str], marked: Iterable[str] = ()) -> list[str]:
    marked = list(marked)
    return [n for n in names if is_sensitive(n, marked)]
