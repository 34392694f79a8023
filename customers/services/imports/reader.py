"""Opening a CSV file as real files come: gzip or not, any common encoding (with
or without a byte-order mark), comma, semicolon, tab or pipe delimited, quoted
newlines. Rows are streamed; the file is never held in memory, and what is read
is bounded (see file_limits): a row longer than the line limit or a .csv.gz that
grows past the decompressed limit stops the reading with a clear reason.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import charset_normalizer

from core.exceptions import ApplicationError
from core.formats import size_text

from .file_limits import ImportLimits, import_limits

SAMPLE_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Above any line limit in use: a row's length is bounded as it is read (RowStream).
csv.field_size_limit(64 * 1024 * 1024)


# Control characters other than tab, line breaks, vertical tab (some programs'
# line break inside a cell) and form feed: text has hardly any, a binary file (an
# image, an archive) has them everywhere.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


class Unreadable(ApplicationError):
    """The file cannot be read at all; nothing is stored."""


@dataclass
class SourceInfo:
    path: str
    size: int
    gzip: bool
    encoding: str
    delimiter: str
    header: list[str] = field(default_factory=list)
    encoding_given: bool = False
    limits: ImportLimits = field(default_factory=import_limits)

    def as_dict(self) -> dict:
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "delimiter_name": DELIMITER_NAMES.get(self.delimiter, self.delimiter),
            "gzip": self.gzip,
            "columns": self.header,
        }


def _open_binary(path: str):
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through RowStream
    magic = raw.read(4)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return raw, gzip.GzipFile(fileobj=raw, mode="rb"), True
    return raw, raw, False


def _refuse_binary(sample: bytes) -> None:
    if sample[:4] == b"PK\x03\x04":
        raise Unreadable(
            "This looks like an Excel workbook or a ZIP archive, not a CSV file. "
            "Save it as CSV (comma- or semicolon-separated) and import that."
        )
    if sample[:4] == b"\xd0\xcf\x11\xe0":
        raise Unreadable(
            "This looks like an old Excel (.xls) file, not a CSV file. Save it as CSV and import that."
        )
    if sample[:4] == b"%PDF":
        raise Unreadable("This is a PDF document, not a CSV file.")


def _looks_binary(text: str) -> bool:
    """A binary file, not text with a stray NUL character: a text file with a few
    NULs (a program's slip) is read, and each row holding one is refused by name
    (kinds.Processor.feed), not the whole file."""
    controls = len(_CONTROL.findall(text))
    return controls > max(16, len(text) // 200)


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(sample) >= 4 and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a byte-order mark: every other byte of ASCII text is NUL.
        return (
            "utf-16-le"
            if sample[1::2].count(b"\x00") > sample[0::2].count(b"\x00")
            else "utf-16-be"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    matches = list(
        charset_normalizer.from_bytes(
            sample[:65536],
            cp_isolation=["cp1252", "latin_1", "iso8859_15", "cp1250", "mac_roman", "cp850"],
        )
    )
    if matches:
        least = min(m.chaos for m in matches)
        # Windows-1252 is what spreadsheet programs in Western Europe and the
        # Americas write: on a tie (a few accented letters read equally well as
        # Central European) it wins.
        for m in matches:
            if m.encoding == "cp1252" and m.chaos <= least + 0.02:
                return "cp1252"
        encoding = min(matches, key=lambda m: m.chaos).encoding
        if encoding not in ("latin_1", "iso8859_15", "mac_roman", "cp850"):
            return encoding
    # Latin-1 reads any byte; prefer Windows-1252, its superset for printable text.
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def sniff_delimiter(text: str) -> str:
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end mid-line
    lines = lines[:200]
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=delimiter) if r]
        except csv.Error:
            continue
        if len(rows) > 2:
            rows = rows[:-1]  # a quoted field may continue past the sample
        if not rows:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        consistent = sum(1 for r in rows if len(r) == width) / len(rows)
        score = (round(consistent, 2), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _normalise_delimiter(value: str | None) -> str | None:
    if not value:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(value.lower(), value)
    if len(value) != 1:
        raise ApplicationError(f"The delimiter must be one character (got '{value}').")
    return value


def text_encoding(name: str) -> str:
    """The codec's own name, if `name` is a text encoding; refuses the others
    (base64, rot13, zlib_codec… turn bytes into bytes or text into text)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        raise ApplicationError(
            f"Unknown encoding '{name}'.", {"fields": {"encoding": "Unknown encoding."}}
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise ApplicationError(
            f"'{name}' is not a text encoding. Use one such as utf-8, cp1252 or latin-1, "
            "or leave it out to detect it.",
            {"fields": {"encoding": "Not a text encoding."}},
        )
    return info.name


_BOMS = {
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


def _check_byte_order(codec: str, sample: bytes) -> None:
    # Without a mark Python's "utf-16" reads the machine's own order, or fails
    # part-way through: say which names fix it.
    boms = _BOMS.get(codec)
    if boms and not sample.startswith(boms):
        name = codec.upper()
        raise Unreadable(
            f"The file does not start with a {name} byte-order mark, so its byte order is "
            f"unknown. Choose {codec}-le or {codec}-be, or leave the encoding out to detect it.",
            {"fields": {"encoding": "No byte-order mark."}},
        )


def inspect(
    path: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    limits: ImportLimits | None = None,
) -> SourceInfo:
    """Detect gzip, encoding and delimiter and read the header."""
    limits = limits or import_limits()
    size = os.path.getsize(path)
    raw, binary, is_gzip = _open_binary(path)
    try:
        try:
            sample = binary.read(SAMPLE_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise Unreadable(f"The compressed file is damaged and cannot be read ({exc}).") from exc
    finally:
        raw.close()
    if not sample.strip():
        raise Unreadable("The file is empty.")
    _refuse_binary(sample)
    if encoding:
        _check_byte_order(text_encoding(encoding), sample)
    enc = encoding or detect_encoding(sample)
    try:
        text = sample.decode(enc, errors="replace")
    except (UnicodeError, LookupError, ValueError):
        raise Unreadable(f"The file cannot be read as {enc}.") from None
    if "\x00" in text and not enc.startswith("utf-16") and _looks_binary(text):
        raise Unreadable("This is not a text file (it contains binary data).")
    delim = _normalise_delimiter(delimiter) or sniff_delimiter(text)
    info = SourceInfo(
        path=path,
        size=size,
        gzip=is_gzip,
        encoding=enc,
        delimiter=delim,
        encoding_given=bool(encoding),
        limits=limits,
    )
    with RowStream(info) as stream:
        try:
            info.header = stream.header
        except UnicodeError:
            raise Unreadable(f"The file's first line cannot be read as {enc}.") from None
    if not info.header:
        raise Unreadable("The file has no header row.")
    if len(info.header) > limits.columns:
        raise limits.too_many_columns(len(info.header))
    return info


def _clean_header(cells: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    header = []
    for i, cell in enumerate(cells):
        name = cell.replace("\ufeff", "").replace("\x00", "").strip() or f"column {i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        header.append(name)
    return header


class RowStream:
    """Iterates (data row number, cells) after the header; knows how far it has read.

    A row (with any quoted line breaks inside it) is read a bounded piece at a time,
    so a file with one endless line costs no more memory than the line limit, and a
    .csv.gz stops at the decompressed limit. `stop_after_bytes` ends the rows quietly
    after that much of the content (a sample read in a web request). NUL characters
    are dropped unless `keep_nul`: the import keeps them so that it can refuse the
    row and name the field (no database text column can hold one)."""

    def __init__(
        self, info: SourceInfo, *, stop_after_bytes: int | None = None, keep_nul: bool = False
    ):
        self.info = info
        self.keep_nul = keep_nul
        self.limits = info.limits
        self.stop_after_bytes = stop_after_bytes
        self._raw, self._binary, self._gzip = _open_binary(info.path)
        self._text = io.TextIOWrapper(self._binary, encoding=info.encoding, newline="")
        self._reader = csv.reader(self._lines(), delimiter=info.delimiter, strict=False)
        self._header: list[str] | None = None
        self._rows = 0  # data rows read
        self._record_chars = 0  # of the row being read

    def _lines(self) -> Iterator[str]:
        cap = self.limits.line_bytes
        decompressed_cap = self.limits.decompressed_bytes if self._gzip else None
        unchecked = 0
        while True:
            line = self._text.readline(cap - self._record_chars + 1)
            if not line:
                if decompressed_cap and self._binary.tell() > decompressed_cap:
                    raise self._too_large_decompressed(decompressed_cap)
                return
            self._record_chars += len(line)
            if self._record_chars > cap:
                where = "The first line" if self._header is None else f"Row {self._rows + 1:,}"
                raise Unreadable(
                    f"{where} is longer than the limit of {size_text(cap)}; nothing was "
                    "imported. Check that the file is a CSV file with one record a line.",
                    {"fields": {"file": "A line is too long."}},
                )
            unchecked += len(line)
            # tell() on a gzip stream is slow: ask once per MB of text read (at most
            # 4 MB of content), which is early enough against a bomb.
            if decompressed_cap and unchecked > 1 << 20:
                unchecked = 0
                if self._binary.tell() > decompressed_cap:
                    raise self._too_large_decompressed(decompressed_cap)
            yield line.replace("\x00", "") if not self.keep_nul and "\x00" in line else line

    @staticmethod
    def _too_large_decompressed(cap: int) -> Unreadable:
        return Unreadable(
            f"Once decompressed, the file is larger than the limit of {size_text(cap)}; "
            "nothing was imported. Split it into smaller files.",
            {"fields": {"file": "Too large once decompressed."}},
        )

    def _next_record(self) -> list[str] | None:
        self._record_chars = 0
        return next(self._reader, None)

    def content_read(self) -> int:
        """Bytes of the (decompressed) content read so far."""
        try:
            return self._binary.tell()
        except (OSError, ValueError):
            return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._raw.close()

    @property
    def header(self) -> list[str]:
        if self._header is None:
            first: list[str] = []
            while (cells := self._next_record()) is not None:
                if any(c.strip() for c in cells):
                    first = cells
                    break
            self._header = _clean_header(first)
        return self._header

    def fraction_read(self) -> float:
        try:
            return min(1.0, self._raw.tell() / max(1, self.info.size))
        except (OSError, ValueError):
            return 0.0

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        _ = self.header
        try:
            while (cells := self._next_record()) is not None:
                self._rows += 1
                yield self._rows, cells
                if self.stop_after_bytes and self.content_read() > self.stop_after_bytes:
                    return
        except csv.Error as exc:
            raise Unreadable(
                f"The file cannot be read as CSV after data row {self._reader.line_num - 1}: {exc}."
            ) from exc
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise Unreadable(f"The compressed file is damaged and cannot be read ({exc}).") from exc


def preview(info: SourceInfo, rows: int = 10) -> list[list[str]]:
    with RowStream(info) as stream:
        try:
            return [cells for _, cells in itertools.islice(stream, rows)]
        except UnicodeError:
            return []
