"""The one import engine behind the site wizard, `import_data` and the API.

A file is read twice, streaming both times: a first pass reads the date columns
whole (to detect their format, or refuse an ambiguous one) and finds orders whose
rows are scattered through the file; the second pass parses rows and writes them
in chunks, one transaction per chunk. A file that cannot be read is refused
before anything is written; a file read again ends in the same state, since
every write is an upsert keyed by the business's own ids.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

from django.db import transaction

from accounts.limits import LimitReached, limit_reached_audit
from core.exceptions import ApplicationError

from ..exports import csv_safe
from . import file_limits
from .columns import DATE_FIELDS, FIELDS, Plan, build_plan
from .customer_limit import CustomerBudget
from .dates import DAY_FIRST, MONTH_FIRST, ColumnSniff, DateFormatError, DateParser
from .kinds import Context, Counts, make_processor
from .reader import RowStream, SourceInfo, Unreadable, inspect
from .values import parse_decimal

if TYPE_CHECKING:
    from _csv import Writer

log = logging.getLogger("segmenta.imports")

ERRORS_KEPT = 1000  # in memory and in the report; every error goes to the errors file
REQUIRED_DATES = {"ordered_at", "occurred_at", "created_at"}
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
# A check (dry run) reads at most this much of the content: it runs in a web request.
SAMPLE_READ_BYTES = 32 * 1024 * 1024
Progress = Callable[[float, str], None]


class ErrorLog:
    """Row errors: the first ones kept for the report, all written to a CSV file."""

    def __init__(self, *, csv_path: str | None = None, key: str = "row", offset: int = 0):
        self.kept: list[dict] = []
        self.total = 0
        self.key = key
        self.offset = offset
        self.csv_path = csv_path
        self._file: TextIO | None = None
        self._writer: Writer | None = None

    def add(self, row: int, fld: str, message: str, value: str = "", customer: str = "") -> None:
        self.total += 1
        row = row + self.offset
        entry = {self.key: row, "field": fld, "message": message}
        if value:
            entry["value"] = value[:200]
        if customer:
            entry["customer_id"] = customer
        if len(self.kept) < ERRORS_KEPT:
            self.kept.append(entry)
        if self.csv_path:
            if self._writer is None:
                os.makedirs(os.path.dirname(self.csv_path), exist_ok=True)
                self._file = open(self.csv_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
                self._writer = csv.writer(self._file)
                self._writer.writerow([self.key, "field", "message", "value", "customer_id"])
            # People open this file in a spreadsheet: no cell may run as a formula.
            self._writer.writerow(
                [row, csv_safe(fld), csv_safe(message), csv_safe(value[:200]), csv_safe(customer)]
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class Outcome:
    counts: Counts
    errors: list[dict]
    error_total: int
    detected: dict = field(default_factory=dict)
    mapping: dict = field(default_factory=dict)
    seconds: float = 0.0
    changed_customer_ids: set[int] = field(default_factory=set)

    @property
    def changed_anything(self) -> bool:
        c = self.counts
        return bool(c.created or c.updated or c.customers_created or c.products_created)

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "rows": c.rows,
            "created": c.created,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "rejected": c.rejected,
            "errors": self.errors,
            "customers_created": c.customers_created,
            "products_created": c.products_created,
        }


@dataclass
class Scan:
    rows: int = 0
    sniffs: dict[str, ColumnSniff] = field(default_factory=dict)
    split_ids: set[str] = field(default_factory=set)


def _order_of_format(fmt: str) -> str | None:
    d, m = fmt.find("%d"), fmt.find("%m")
    if d < 0 or m < 0:
        return None
    return DAY_FIRST if d < m else MONTH_FIRST


def prescan(
    info: SourceInfo,
    plan: Plan,
    *,
    limit: int | None = None,
    dates: bool = True,
    max_rows: int | None = None,
    stop_after_bytes: int | None = None,
    limits: file_limits.ImportLimits | None = None,
) -> Scan:
    """The first pass: date columns and scattered orders; refuses a file of more
    than `max_rows` data rows before anything is written."""
    scan = Scan()
    date_cols = []
    if dates:
        for i, f in plan.fields:
            if f in DATE_FIELDS[plan.kind]:
                scan.sniffs[f] = ColumnSniff(column=plan.header[i])
                date_cols.append((i, scan.sniffs[f]))
    order_col = next((i for i, f in plan.fields if f == "order_id"), None)
    closed: set[str] = set()
    current = None
    data_rows = 0
    with RowStream(info, stop_after_bytes=stop_after_bytes) as stream:
        for _, cells in stream:
            scan.rows += 1
            if max_rows and cells:
                data_rows += 1
                if data_rows > max_rows:
                    if limits is not None and limits.rows == max_rows:
                        raise limits.too_many_rows()
                    raise Unreadable(
                        f"The file has more than {max_rows:,} rows, the most your plan imports "
                        "at once; nothing was imported. Split it into smaller files.",
                        {"fields": {"file": "Too many rows."}},
                    )
            n = len(cells)
            for i, sniff in date_cols:
                if i < n:
                    value = cells[i].strip()
                    if value:
                        sniff.add(value)
            if order_col is not None and order_col < n:
                oid = cells[order_col].strip()
                if oid and oid != current:
                    if oid in closed:
                        scan.split_ids.add(oid)
                    if current is not None:
                        closed.add(current)
                    current = oid
            if limit and scan.rows >= limit:
                break
    return scan


def date_parsers(
    *, kind: str, plan, scan: Scan | None, tz, date_format: str | None, shift_days: int = 0
) -> dict[str, DateParser]:
    parsers = {}
    shift = dt.timedelta(days=shift_days) if shift_days else None
    zones = getattr(plan, "zones", {})
    date_orders = getattr(plan, "date_orders", {})
    default_tz = tz
    for f in DATE_FIELDS[kind]:
        date_only = FIELDS[kind][f] == "date"
        tz = zones.get(f, default_tz)  # "Created date (UTC)": the header names the zone
        if date_format:
            parsers[f] = DateParser(
                tz=tz,
                explicit_format=date_format,
                order=_order_of_format(date_format),
                shift=shift,
                date_only=date_only,
            )
            continue
        order = date_orders.get(f)
        sniff = scan.sniffs.get(f) if scan and order is None else None
        if sniff is not None:
            try:
                order = sniff.decide()
            except DateFormatError as exc:
                raise ApplicationError(str(exc), {"fields": {"date_format": str(exc)}}) from None
            if f in REQUIRED_DATES and sniff.unreadable and not sniff.readable:
                raise ApplicationError(
                    f"Column '{sniff.column}' has no dates we can read (for example "
                    f"'{sniff.unreadable_example}'). Give the format with --date-format, "
                    "for example %d.%m.%Y %H:%M.",
                    {"fields": {"date_format": "Needed for this file."}},
                )
        parsers[f] = DateParser(tz=tz, order=order, shift=shift, date_only=date_only)
    return parsers


def _tz(organization) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def run_file(
    *,
    organization,
    path: str,
    kind: str,
    mapping: dict[str, str] | None = None,
    date_format: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    shift_days: int = 0,
    progress: Progress | None = None,
    errors_csv: str | None = None,
    source_label: str = "import",
    actor=None,
    max_rows: int | None = None,
    prescan_limit: int | None = None,
    chunk_size: int = 5000,
    allow_deleted: bool = False,
    sample_bytes: int | None = None,
    rates: dict[str, Any] | None = None,
) -> Outcome:
    """Import one file. Runs in the organisation's tenant context. `rates`
    ({"ZAR": "0.055"}: one unit of that currency in the organisation's) converts
    the orders in those currencies."""
    started = time.monotonic()
    if kind not in FIELDS:
        raise ApplicationError(f"Unknown kind '{kind}'. Use one of: {', '.join(FIELDS)}.")
    limits = file_limits.import_limits(organization=organization)
    info = inspect(path, encoding=encoding, delimiter=delimiter, limits=limits)
    plan = build_plan(kind, info.header, mapping)
    plan.check()
    report = progress or (lambda pct, msg: None)
    report(1, "Reading the file…")
    encodings = [info.encoding] + ([] if info.encoding_given else list(FALLBACK_ENCODINGS))
    for i, enc in enumerate(encodings):
        info.encoding = enc
        try:
            scan = prescan(
                info,
                plan,
                limit=prescan_limit,
                dates=not date_format,
                # A sample (a dry run) is not refused for the rows it did not read.
                max_rows=None if prescan_limit else limits.rows,
                stop_after_bytes=sample_bytes,
                limits=limits,
            )
            break
        except UnicodeDecodeError as exc:
            if i == len(encodings) - 1:
                raise Unreadable(
                    f"The file cannot be read as {enc} text ({exc.reason} at byte {exc.start}). "
                    "Save it as UTF-8, or give its encoding with --encoding."
                ) from None
            log.info("import.encoding_fallback from=%s", enc)
    parsers = date_parsers(
        kind=kind,
        plan=plan,
        scan=scan,
        tz=_tz(organization),
        date_format=date_format,
        shift_days=shift_days,
    )
    errors = ErrorLog(csv_path=errors_csv)
    ctx = Context(
        organization_id=organization.pk,
        kind=kind,
        tz=_tz(organization),
        plan=plan,
        errors=errors,
        dates=parsers,
        source_label=source_label,
        actor=actor,
        chunk_size=chunk_size,
        allow_deleted=allow_deleted,
        currency=(organization.currency or "").upper(),
        rates=parse_rates(rates),
        budget=CustomerBudget(limits.plan),
    )
    processor = make_processor(ctx, scan.split_ids)
    total_rows = scan.rows if not prescan_limit else None
    detected = {
        **info.as_dict(),
        "format": plan.fmt,
        "format_name": plan.label,
        "rows_scanned": scan.rows,
    }
    if not date_format:
        detected["date_order"] = {
            plan.column(f): plan.date_orders.get(f) or s.decide()
            for f, s in scan.sniffs.items()
            if s.numeric
        }

    def outcome() -> Outcome:
        if ctx.currencies:
            own = (organization.currency or "").upper()
            detected["currencies"] = dict(ctx.currencies)
            # amounts in another currency are kept in it, never added to the
            # organisation's: the report says so
            detected["other_currencies"] = sorted(c for c in ctx.currencies if c and c != own)
            # ...unless the owner gave a rate: then they are converted into it
            detected["converted"] = {
                c: f"{ctx.rates[c].normalize():f}"
                for c in detected["other_currencies"]
                if c in ctx.rates
            }
        return Outcome(
            counts=ctx.counts,
            errors=errors.kept,
            error_total=errors.total,
            detected=detected,
            mapping=plan.mapping,
            seconds=round(time.monotonic() - started, 2),
            changed_customer_ids=ctx.changed_customer_ids,
        )

    try:
        with RowStream(info, stop_after_bytes=sample_bytes, keep_nul=True) as stream:
            try:
                for rownum, cells in stream:
                    records = plan.rows(cells)
                    if not any(attrs or any(rec.values()) for rec, attrs in records):
                        continue  # an empty line is not a data row
                    if max_rows and ctx.counts.rows >= max_rows:
                        break
                    ctx.counts.rows += 1
                    if _oversized(ctx, limits, rownum, cells, records[0][1]):
                        continue
                    wrote = False
                    for rec, attrs in records:
                        wrote = processor.feed(rownum, rec, attrs) or wrote
                    if wrote:
                        c = ctx.counts
                        of = f" of {total_rows:,}" if total_rows else ""
                        report(
                            5 + 94 * stream.fraction_read(),
                            f"Imported {c.rows:,}{of} rows: {c.created:,} new, {c.updated:,} updated, "
                            f"{c.unchanged:,} unchanged, {c.rejected:,} rejected.",
                        )
            except UnicodeDecodeError as exc:
                raise Unreadable(
                    f"The file cannot be read as {info.encoding} text after row {ctx.counts.rows:,} "
                    f"({exc.reason}). Give its encoding with --encoding."
                ) from None
        processor.finish()
        if ctx.limit_hit is not None:
            # (a check's dry run rolls this back with the rest)
            limit_reached_audit(organization=organization, error=ctx.limit_hit)
        _statistics_refresh(kind, ctx.counts.created + ctx.counts.updated)
    except BaseException as exc:
        # Cancelled or failed part-way: what was written so far stays (each chunk
        # is whole), and the caller can report it.
        exc.partial_outcome = outcome()  # type: ignore[attr-defined]
        raise
    finally:
        errors.close()
    return outcome()


def parse_rates(rates: dict[str, Any] | None) -> dict[str, Decimal]:
    """{"zar": "0.055"} → {"ZAR": Decimal("0.055")}: exchange rates an owner gives
    for an import (one unit of the currency in the organisation's currency).
    Refuses what is not a 3-letter code with a positive number."""
    out: dict[str, Decimal] = {}
    for code, value in (rates or {}).items():
        cur = str(code).strip().upper()
        if len(cur) != 3 or not cur.isalpha():
            raise ApplicationError(
                f"'{code}' is not a 3-letter currency code such as ZAR.",
                {"fields": {"rates": "Not a currency code."}},
            )
        try:
            rate = parse_decimal(str(value))
        except ValueError:
            rate = None
        if rate is None or not rate.is_finite() or rate <= 0 or rate > 10**9:
            raise ApplicationError(
                f"The rate for {cur} must be a positive number (one {cur} in your "
                f"currency, such as 0.055); got '{value}'.",
                {"fields": {"rates": f"No rate for {cur}."}},
            )
        out[cur] = rate
    return out


def _oversized(ctx: Context, limits, rownum: int, cells: list[str], attrs: dict) -> bool:
    """Reject a row with a cell over the field limit, or extra columns (kept as
    attributes) over the attributes limit; True when it was rejected."""
    if cells and max(map(len, cells)) * 4 > limits.field_bytes:
        header = ctx.plan.header
        for i, cell in enumerate(cells):
            problem = limits.field_problem(cell)
            if problem:
                column = header[i] if i < len(header) else f"column {i + 1}"
                ctx.errors.add(rownum, column, problem)
                ctx.counts.add("rejected")
                return True
    problem = limits.attributes_problem(attrs, what="the other columns' values")
    if problem:
        ctx.errors.add(rownum, "attributes", problem)
        ctx.counts.add("rejected")
        return True
    return False


def _statistics_refresh(kind: str, rows: int) -> None:
    """A big import's tables analysed once it has committed (core.dbstats): the
    pages reading the new rows then get plans that know them. Nothing after a dry
    run (rolled back) or a small import. Order imports keep the customers' order
    statistics up to date too."""
    from core.dbstats import statistics_refresh_after_commit
    from customers.models import Customer, Event, Feedback, Order, OrderLine, Product

    written = {
        "customers": (Customer,),
        "products": (Product,),
        "orders": (Order, OrderLine, Customer),
        "events": (Event,),
        "feedback": (Feedback,),
    }
    for model in written.get(kind, ()):
        statistics_refresh_after_commit(model, rows)


class _Rollback(Exception):
    pass


def dry_run(*, organization, path: str, kind: str, sample_rows: int = 1000, **options) -> Outcome:
    """Import the first rows and roll everything back: what a real run would say."""
    result: list[Outcome] = []
    try:
        with transaction.atomic():
            result.append(
                run_file(
                    organization=organization,
                    path=path,
                    kind=kind,
                    max_rows=sample_rows,
                    prescan_limit=200_000,
                    sample_bytes=SAMPLE_READ_BYTES,
                    **options,
                )
            )
            raise _Rollback()
    except _Rollback:
        pass
    return result[0]


# --- records from the API -----------------------------------------------------------------

ALIASES = {"external_id": "customer_id"}


class RecordPlan:
    """The API's records use the canonical names; other keys are kept as attributes."""

    def __init__(self, kind: str, records: list[dict]):
        self.kind = kind
        self.field_names = set(FIELDS[kind])
        self.customer_key = "customer_id" if "customer_id" in self.field_names else None
        self.fmt = "api"

    def column(self, fld: str) -> str:
        return fld


def _text_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def record_to_row(kind: str, record: dict) -> tuple[dict[str, str], dict[str, Any]]:
    fields = FIELDS[kind]
    rec: dict[str, str] = dict.fromkeys(fields, "")
    attrs: dict[str, Any] = {}
    for key, value in record.items():
        name = ALIASES.get(key, key) if kind == "customers" else key
        if name in fields:
            rec[name] = _text_value(value)
        elif key in ("attributes", "properties") and isinstance(value, dict):
            attrs.update({k: v for k, v in value.items() if v is not None and v != ""})
        elif value is not None and value != "":
            attrs[key] = value
    if kind == "customers" and not rec["customer_id"] and rec.get("email"):
        rec["customer_id"] = rec["email"].lower()
    return rec, attrs


def run_records(
    *,
    organization,
    kind: str,
    records: list[dict],
    source_label: str = "API",
    allow_deleted: bool = False,
    actor=None,
) -> Outcome:
    """Bulk upsert of API records; errors are reported by index (0-based). `actor`
    (the API key or member) is recorded with the consent changes. All or nothing
    for the plan's limit of customers: a call that would add more customers than
    are left raises `LimitReached` (403) and writes nothing."""
    started = time.monotonic()
    tz = _tz(organization)
    plan = RecordPlan(kind, records)
    errors = ErrorLog(key="index", offset=-1)
    limits = file_limits.import_limits(organization=organization)
    ctx = Context(
        organization_id=organization.pk,
        kind=kind,
        tz=tz,
        plan=plan,
        errors=errors,
        dates=date_parsers(kind=kind, plan=plan, scan=None, tz=tz, date_format=None),
        source_label=source_label,
        actor=actor,
        via="api",
        chunk_size=10_000,
        allow_deleted=allow_deleted,
        currency=(organization.currency or "").upper(),
        budget=CustomerBudget(limits.plan, whole_batch=True, organization_id=organization.pk),
    )
    processor = make_processor(ctx)
    try:
        with transaction.atomic():
            for index, record in enumerate(records, start=1):
                rec, attrs = record_to_row(kind, record)
                ctx.counts.rows += 1
                problem = limits.attributes_problem(attrs)
                if problem:
                    errors.add(index, "attributes", problem)
                    ctx.counts.add("rejected")
                    continue
                processor.feed(index, rec, attrs)
            processor.finish()
            refusal = ctx.budget.batch_error(created=ctx.new_customers())
            if refusal is not None:
                raise refusal  # rolls the whole call back
    except LimitReached as exc:
        # after the rollback, so that the owner's audit log keeps it
        limit_reached_audit(organization=organization, error=exc)
        raise
    return Outcome(
        counts=ctx.counts,
        errors=errors.kept,
        error_total=errors.total,
        seconds=round(time.monotonic() - started, 2),
        changed_customer_ids=ctx.changed_customer_ids,
    )
