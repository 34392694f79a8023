"""Dates and times as files write them, detected from the whole column.

ISO 8601 (also with a space, a zone, or `Z`), basic `YYYYMMDD` and dates with
month names are read directly. Numeric dates such as `03/04/2011` are read only
when the column shows which part is the day (a value above 12 somewhere); a
column where every value could be either is refused with a message asking for
the format, never guessed. Timestamps without a zone are in the organisation's
time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

ISO_RE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
BASIC_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?)?(Z)?$")
_TIME = r"(?:(?:[ T]+|,\s*|\s+at\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(?:([AaPp])\.?[Mm]\.?)?)?"
_ZONE = r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?$"
NUMERIC_RE = re.compile(r"^(\d{1,4})([/.\-])(\d{1,2})\2(\d{1,4})" + _TIME + _ZONE, re.IGNORECASE)
NAMED_DMY_RE = re.compile(
    r"^(?:[A-Za-z]{3,9}\.?,?\s+)?(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]+([A-Za-z]{3,9})\.?,?[\s\-/.]+(\d{2,4})"
    + _TIME
    + _ZONE,
    re.IGNORECASE,
)
NAMED_MDY_RE = re.compile(
    r"^(?:[A-Za-z]{3,9}\.?,?\s+)?([A-Za-z]{3,9})\.?[\s\-]+(\d{1,2})(?:st|nd|rd|th)?,?[\s\-]+(\d{4})"
    + _TIME
    + _ZONE,
    re.IGNORECASE,
)
MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("jan", "january", "janv", "janvier", "januar", "enero", "gennaio"),
            ("feb", "february", "fev", "févr", "fevr", "février", "februar", "febrero"),
            ("mar", "march", "mars", "märz", "marz", "marzo"),
            ("apr", "april", "avr", "avril", "abril", "aprile"),
            ("may", "mai", "mayo", "maggio"),
            ("jun", "june", "juin", "juni", "junio", "giugno"),
            ("jul", "july", "juil", "juillet", "juli", "julio", "luglio"),
            ("aug", "august", "aout", "août", "agosto"),
            ("sep", "sept", "september", "septembre", "septiembre", "settembre"),
            ("oct", "october", "octobre", "oktober", "octubre", "ottobre", "okt"),
            ("nov", "november", "novembre", "noviembre"),
            ("dec", "december", "décembre", "decembre", "dezember", "diciembre", "dicembre", "dez"),
        ],
        start=1,
    )
    for name in names
}

DAY_FIRST, MONTH_FIRST = "day_first", "month_first"
_EXAMPLES = {DAY_FIRST: "%d/%m/%Y %H:%M", MONTH_FIRST: "%m/%d/%Y %H:%M"}


class _UnknownFormat(ValueError):
    pass


class DateFormatError(ValueError):
    """A whole column cannot be read without the user naming the format."""


def _year(text: str) -> int:
    y = int(text)
    if len(text) <= 2:
        return 2000 + y if y < 70 else 1900 + y
    return y


def _zone(text: str | None) -> dt.tzinfo | None:
    if not text:
        return None
    t = text.upper()
    if t in ("Z", "UTC", "GMT"):
        return dt.UTC
    sign = -1 if t[0] == "-" else 1
    digits = t[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _build(y, mo, d, h, mi, s, frac, ampm, zone) -> dt.datetime:
    hour = int(h) if h else 0
    if ampm:
        if hour > 12:
            raise ValueError("hour above 12 with AM/PM")
        hour = hour % 12 + (12 if ampm.lower() == "p" else 0)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return dt.datetime(
        y, mo, d, hour, int(mi) if mi else 0, int(s) if s else 0, micro, tzinfo=_zone(zone)
    )


@dataclass
class ColumnSniff:
    """What one pass over a date column found."""

    column: str
    iso: int = 0
    day_first_seen: str = ""  # an example value that can only be day-first
    month_first_seen: str = ""
    ambiguous: str = ""  # an example that could be either (day != month, both <= 12)
    numeric: int = 0
    named: int = 0
    unreadable: int = 0
    unreadable_example: str = ""
    seen: set = field(default_factory=set)

    def add(self, value: str) -> None:
        if value in self.seen:
            return
        if len(self.seen) < 200_000:
            self.seen.add(value)
        if ISO_RE.match(value) or BASIC_RE.match(value):
            self.iso += 1
            return
        m = NUMERIC_RE.match(value)
        if m:
            a, b = m.group(1), m.group(3)
            self.numeric += 1
            if len(a) == 4:  # year first: Y-M-D
                return
            first, second = int(a), int(b)
            if first > 12 and second <= 12:
                self.day_first_seen = self.day_first_seen or value
            elif second > 12 and first <= 12:
                self.month_first_seen = self.month_first_seen or value
            elif first != second and first <= 12 and second <= 12:
                self.ambiguous = self.ambiguous or value
            return
        if NAMED_DMY_RE.match(value) or NAMED_MDY_RE.match(value):
            self.named += 1
            return
        self.unreadable += 1
        self.unreadable_example = self.unreadable_example or value

    def decide(self) -> str | None:
        """The numeric order (DAY_FIRST / MONTH_FIRST), or None if not needed."""
        if self.day_first_seen and self.month_first_seen:
            raise DateFormatError(
                f"The dates in column '{self.column}' mix day-first and month-first values "
                f"(for example '{self.day_first_seen}' and '{self.month_first_seen}'). "
                "Correct the file, or give the format with --date-format "
                f"(for example {_EXAMPLES[DAY_FIRST]})."
            )
        if self.day_first_seen:
            return DAY_FIRST
        if self.month_first_seen:
            return MONTH_FIRST
        if self.ambiguous:
            raise DateFormatError(
                f"The dates in column '{self.column}', such as '{self.ambiguous}', could be "
                "day/month or month/day, and no value in the column settles it. "
                f"Give the format with --date-format (for example {_EXAMPLES[DAY_FIRST]} "
                f"for day first or {_EXAMPLES[MONTH_FIRST]} for month first), or pick it in "
                "the import form."
            )
        return DAY_FIRST if self.numeric else None

    @property
    def readable(self) -> int:
        return self.iso + self.numeric + self.named


class DateParser:
    """Parses one column's values into aware datetimes (or dates) with a cache."""

    def __init__(
        self,
        *,
        tz: dt.tzinfo,
        order: str | None = None,
        explicit_format: str | None = None,
        shift: dt.timedelta | None = None,
        date_only: bool = False,
        allow_numeric: bool = True,
    ):
        self.tz = tz
        self.order = order
        self.explicit_format = explicit_format
        self.shift = shift
        self.date_only = date_only
        self.allow_numeric = allow_numeric
        self._cache: dict[str, object] = {}

    def __call__(self, value: str):
        cached = self._cache.get(value)
        if cached is not None:
            return cached
        result = self._parse(value)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[value] = result
        return result

    def _finish(self, value: dt.datetime):
        if self.date_only:
            return value.date() if value.tzinfo is None else value.astimezone(self.tz).date()
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        if self.shift:
            value = value + self.shift
        return value

    def _parse(self, value: str):
        if self.explicit_format:
            try:
                return self._finish(dt.datetime.strptime(value, self.explicit_format))  # noqa: DTZ007 - zone applied in _finish
            except ValueError:
                pass  # ISO values are still read (another date column may be ISO)
        try:
            return self._finish(self._parse_known(value))
        except ValueError as exc:
            raise ValueError(self._message(value, exc)) from None

    def _message(self, value: str, exc: Exception) -> str:
        if isinstance(exc, _UnknownFormat):
            if self.explicit_format:
                return f"'{value}' does not match the date format {self.explicit_format}"
            return f"'{value}' is not a date we can read (use ISO 8601 such as 2024-03-31 14:05)"
        return f"'{value}' is not a valid date: {exc}"

    def _parse_known(self, value: str) -> dt.datetime:
        m = ISO_RE.match(value)
        if m:
            y, mo, d, h, mi, s, frac, zone = m.groups()
            return _build(int(y), int(mo), int(d), h, mi, s, frac, None, zone)
        m = BASIC_RE.match(value)
        if m:
            y, mo, d, h, mi, s, zone = m.groups()
            return _build(int(y), int(mo), int(d), h, mi, s, None, None, zone)
        m = NUMERIC_RE.match(value)
        if m:
            a, _, b, c, h, mi, s, frac, ampm, zone = m.groups()
            if len(a) == 4:
                y, mo, d = int(a), int(b), int(c)
            else:
                if not self.allow_numeric or self.order is None:
                    first, second = int(a), int(b)
                    if first == second or first > 12 or second > 12:
                        order = DAY_FIRST if first > 12 or first == second else MONTH_FIRST
                    else:
                        raise ValueError(
                            "it could be day/month or month/day; use ISO 8601 (YYYY-MM-DD)"
                        )
                else:
                    order = self.order
                y = _year(c)
                d, mo = (int(a), int(b)) if order == DAY_FIRST else (int(b), int(a))
            return _build(y, mo, d, h, mi, s, frac, ampm, zone)
        for regex, day_group, month_group in ((NAMED_DMY_RE, 1, 2), (NAMED_MDY_RE, 2, 1)):
            m = regex.match(value)
            if m:
                month = MONTHS.get(m.group(month_group).lower().rstrip("."))
                if month is None:
                    raise ValueError(f"'{m.group(month_group)}' is not a month name")
                h, mi, s, frac, ampm, zone = m.group(4, 5, 6, 7, 8, 9)
                return _build(
                    _year(m.group(3)), month, int(m.group(day_group)), h, mi, s, frac, ampm, zone
                )
        raise _UnknownFormat()
