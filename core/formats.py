"""Sizes as people read them, the same way on every page, message and document."""

from __future__ import annotations

_UNITS = (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def size_text(n: int) -> str:
    """Bytes in the one unit the product uses: 1 KB = 1,024 bytes (as file browsers
    and Django's `filesizeformat` show sizes), "200 MB" rather than "200.0 MB"."""
    for unit, scale in _UNITS:
        if n >= scale:
            value = round(n / scale, 1)
            text = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
            return f"{text} {unit}"
    return f"{n:,} bytes"
