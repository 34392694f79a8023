"""Reading cell values as real files write them: currency symbols, thousands
separators, decimal commas, yes/no flags. Each parser raises `ValueError` with a
message a person can act on."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_TRUE = frozenset(
    {
        "1",
        "true",
        "t",
        "yes",
        "y",
        "on",
        "x",
        "subscribed",
        "opted in",
        "opted_in",
        "opt-in",
        "optin",
        "granted",
        "accepted",
        "confirmed",
        "in stock",
        "instock",
        "available",
    }
)
_FALSE = frozenset(
    {
        "0",
        "false",
        "f",
        "no",
        "n",
        "off",
        "unsubscribed",
        "not subscribed",
        "opted out",
        "opted_out",
        "opt-out",
        "optout",
        "denied",
        "declined",
        "withdrawn",
        "out of stock",
        "outofstock",
        "unavailable",
        "pending",  # Shopify "pending" confirmation is not consent yet
        "invalid",
        "never subscribed",
    }
)
# Everything that is not part of a number: currency symbols and codes, spaces
# (also no-break and thin spaces), apostrophes used as thousands separators.
_NOT_NUMBER = re.compile(r"[^\d,.\-+]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_decimal(text: str) -> Decimal:
    """'£1,234.50', '1.234,50 €', '(12.00)', '12,5', '-3' → Decimal."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is not None:
        if value.is_finite():
            return value
        raise ValueError(f"'{text}' is not a number")
    t = text.strip()
    negative = False
    if t.startswith("(") and t.endswith(")"):
        negative, t = True, t[1:-1]
    t = _NOT_NUMBER.sub("", t)
    if t.endswith("-") and len(t) > 1:
        negative, t = not negative, t[:-1]
    if t.startswith(("-", "+")):
        if t[0] == "-":
            negative = not negative
        t = t[1:]
    if not t or not any(c.isdigit() for c in t):
        raise ValueError(f"'{text}' is not a number")
    if "," in t and "." in t:
        if t.rfind(",") > t.rfind("."):  # 1.234,50
            t = t.replace(".", "").replace(",", ".")
        else:  # 1,234.50
            t = t.replace(",", "")
    elif "," in t:
        parts = t.split(",")
        if len(parts) > 2 or (len(parts[1]) == 3 and parts[0].lstrip("0")):
            t = t.replace(",", "")  # 1,234 or 1,234,567: thousands
        else:
            t = t.replace(",", ".")  # 12,5: a decimal comma
    elif t.count(".") > 1:
        t = t.replace(".", "")  # 1.234.567
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise ValueError(f"'{text}' is not a number") from None
    if not value.is_finite():
        raise ValueError(f"'{text}' is not a number")
    return -value if negative else value


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    value = parse_decimal(text)
    if value != value.to_integral_value():
        raise ValueError(f"'{text}' is not a whole number")
    return int(value)


def parse_float(text: str) -> float:
    value = float(parse_decimal(text))
    if value in (float("inf"), float("-inf")):  # 1e400: finite as text, not as a float
        raise ValueError(f"'{text}' is too large")
    return value


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"'{text}' is not yes or no (use yes/no, true/false or 1/0)")


def parse_email(text: str) -> str:
    t = text.strip().lower()
    if t.startswith("mailto:"):
        t = t[7:]
    if not _EMAIL.match(t) or len(t) > 254:
        raise ValueError(f"'{text}' is not an email address")
    return t


def parse_latitude(text: str) -> float:
    value = parse_float(text)
    if not -90 <= value <= 90:
        raise ValueError(f"'{text}' is not a latitude (between -90 and 90)")
    return value


def parse_longitude(text: str) -> float:
    value = parse_float(text)
    if not -180 <= value <= 180:
        raise ValueError(f"'{text}' is not a longitude (between -180 and 180)")
    return value


# A rating as review and survey exports write it: "4", "4.5", "4,5" (decimal
# comma), "4/5", "4 out of 5", "4 stars", "★★★★☆". The number given is kept on
# the file's own scale ("8/10" is 8). Anything else ("", "n/a", "-", "five") is
# no rating at all: the feedback is kept, with its rating blank.
_RATING = re.compile(
    r"^(\d+(?:[.,]\d{1,2})?)\s*"
    r"(?:(?:/|out\s+of|of)\s*(\d+(?:[.,]\d{1,2})?))?\s*"
    r"(?:stars?|pts?|points?|★|⭐)?$",
    re.IGNORECASE,
)
_STAR_FULL = frozenset("★⭐*")
_STAR_EMPTY = frozenset("☆✩")


def parse_rating(text: str) -> float | None:
    """A rating, or None when the cell holds none. Raises `ValueError` only for a
    number too large to store (1e400)."""
    t = text.replace("\u00a0", " ").strip()
    if not t:
        return None
    try:
        plain = Decimal(t)
    except InvalidOperation:
        plain = None
    if plain is not None:
        return parse_float(t) if plain.is_finite() else None  # "NaN", "Infinity": none
    chars = set(t) - {" "}
    if chars and chars <= _STAR_FULL | _STAR_EMPTY:
        return float(sum(1 for c in t if c in _STAR_FULL))
    match = _RATING.match(t)
    if not match:
        return None
    value = float(match.group(1).replace(",", "."))
    scale = match.group(2)
    if scale is not None and value > float(scale.replace(",", ".")):
        return None  # "5/4": not a score out of a scale
    return value
