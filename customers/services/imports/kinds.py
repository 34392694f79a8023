"""What each kind of row means: parsing a row, and writing a chunk of rows.

Every processor takes rows one at a time (`feed`), groups them into chunks and
writes each chunk in one transaction (`flush`). Every data row ends up counted
exactly once: created, updated, unchanged or rejected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import sqlite3
import tempfile
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DataError, IntegrityError, connection, models, transaction
from django.utils import timezone

from accounts.actor import Actor
from core.web import web_url_problem
from customers import fields as customer_fields
from customers.merchandise import is_merchandise
from customers.models import (
    SEGMENTA_EVENT_TYPES,
    Customer,
    ErasedIdentifier,
    Event,
    Feedback,
    MerchandiseSource,
    Order,
    Product,
)

from ..consent import CONSENT_FIELDS, ConsentBatch
from ..customers import customers_touch
from ..identity import erased_external_ids, identifier_digests
from ..limits import moment_problem, money_problem
from ..stats import StatsDelta, customer_stats_add, customer_stats_refresh
from .db import BulkDb
from .values import (
    parse_bool,
    parse_decimal,
    parse_email,
    parse_int,
    parse_latitude,
    parse_longitude,
    parse_rating,
)

Q4 = Decimal("0.0001")
log = logging.getLogger("segmenta.imports")
CACHE_LIMIT = 500_000  # ids remembered per import (bounded memory)
CURRENCY_SYMBOLS = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "us$": "USD", "kr": "SEK"}


class RowError(Exception):
    def __init__(self, field: str, message: str, value: str = ""):
        super().__init__(message)
        self.field = field
        self.message = message
        self.value = value


# While a row is parsed (Processor.feed), the problems of its fields are collected
# here, so that a rejected row or record names every problem, not only the first.
_row_problems: ContextVar[list[RowError] | None] = ContextVar("row_problems", default=None)


def _problem(name: str, message: str, value: str = "") -> None:
    """A field's value is not valid: noted (and parsing goes on with the field
    blank) while a row is parsed, else raised."""
    problems = _row_problems.get()
    if problems is None:
        raise RowError(name, message, value)
    problems.append(RowError(name, message, value))


def content_hash(parts: Any) -> str:
    data = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(data.encode(), usedforsecurity=False).hexdigest()


def _utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat() if value else ""


def insert_columns(model: type[models.Model], values: dict[str, Any]) -> tuple[list[str], list]:
    """Every column a raw INSERT must name (NOT NULL ones take their defaults)."""
    columns: list[str] = []
    row: list = []
    for f in model._meta.concrete_fields:
        # (a concrete field always has a column; the stubs type it optional; a
        # generated one is the database's to write)
        if f.primary_key or f.name == "organization" or f.column is None or f.generated:
            continue
        if f.name in values or f.attname in values:
            value = values.get(f.name, values.get(f.attname))
        elif f.null:
            continue
        else:
            value = f.get_default()
        columns.append(f.column)
        row.append(value)
    return columns, row


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    customers_created: int = 0
    products_created: int = 0

    def add(self, outcome: str, n: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + n)


@dataclass
class Context:
    organization_id: int
    kind: str
    tz: dt.tzinfo
    plan: Any  # columns.Plan, or a records plan for API bulk writes
    errors: Any  # engine.ErrorLog
    dates: dict[str, Any]  # field -> DateParser
    source_label: str = "import"
    actor: Any = None  # accounts.actor.Actor: who brings the rows (consent history)
    via: str = "import"  # how they come: "import" (files) or "api" (bulk records)
    chunk_size: int = 5000
    counts: Counts = field(default_factory=Counts)
    # When the import started: timestamps more than a day later are refused.
    now: dt.datetime = field(default_factory=timezone.now)
    # Re-create orders a person deleted (they are skipped otherwise).
    allow_deleted: bool = False
    db: BulkDb = None  # type: ignore[assignment]
    changed_customer_ids: set[int] = field(default_factory=set)
    products: dict[str, tuple[int, bool, bool]] = field(default_factory=dict)
    # rows per currency code ("" when the row names none): a file in another
    # currency than the organisation's is flagged in the report
    currencies: Counter = field(default_factory=Counter)
    # the organisation's currency: a customer's total_spent counts it alone
    currency: str = ""
    # {currency: rate} the owner gave for this import: 1 unit of it is `rate` units of
    # the organisation's currency; orders in it are converted as they are read
    rates: dict[str, Decimal] = field(default_factory=dict)
    # the plan's limit of customers (customer_limit.CustomerBudget); None: no limit
    budget: Any = None
    # the LimitReached that refused rows of this run, for the owner's audit log
    limit_hit: Any = None

    def new_customers(self) -> int:
        """Customers this run has created so far (a rolled-back chunk's excluded)."""
        created = self.counts.created if self.kind == "customers" else 0
        return created + self.counts.customers_created

    def customers_allowed(self, keys: list[str]) -> list[str]:
        """The new customers' keys (in order) of `keys` that the plan's limit lets
        this run create; notes the refusal for the audit log when some are not."""
        if self.budget is None or not keys:
            return keys
        allowed = self.budget.allow(len(keys), created=self.new_customers())
        if allowed < len(keys) and self.limit_hit is None:
            self.limit_hit = self.budget.row_error()
        return keys[:allowed]

    def reject_over_limit(self, rownums: list[int], customer: str) -> None:
        """Rows refused because they would add a customer beyond the plan's limit."""
        error = self.limit_hit or self.budget.row_error()
        key = self.plan.customer_key or "customer_id"
        self.reject(rownums, key, error.message, "", customer)

    def own_currency(self, code: str) -> bool:
        """An amount in `code` may be added to the organisation's figures."""
        return not code or not self.currency or code == self.currency

    def __post_init__(self):
        self.db = BulkDb(self.organization_id)

    def reject(self, rownums: list[int], fld: str, message: str, value: str = "", customer=""):
        for n in rownums:
            self.errors.add(n, self.plan.column(fld), message, value, customer)
        self.counts.add("rejected", len(rownums))


# --- shared field readers --------------------------------------------------------------


def _text(rec: dict, name: str, max_len: int) -> str:
    """A text field; longer than the field holds is refused (as `PATCH` refuses
    it), not cut."""
    value = rec.get(name) or ""
    if len(value) > max_len:
        _problem(name, f"is longer than {max_len} characters", value[:50])
        return ""
    return value


def _ident(rec: dict, name: str, max_len: int = 255) -> str:
    value = rec.get(name) or ""
    if len(value) > max_len:
        raise RowError(name, f"is longer than {max_len} characters", value[:50])
    return value


def _parse(rec: dict, name: str, parser):
    value = rec.get(name) or ""
    if not value:
        return None
    try:
        return parser(value)
    except ValueError as exc:
        _problem(name, str(exc), value)
        return None


def _money(rec: dict, name: str) -> Decimal | None:
    value = _parse(rec, name, parse_decimal)
    if value is None:
        return None
    problem = money_problem(value)
    if problem is None:
        value = value.quantize(Q4)
        problem = money_problem(value)  # 99999999999999.99999 rounds up to 10^14
    if problem:
        _problem(name, problem, rec.get(name, ""))
        return None
    return value


def _date(ctx: Context, rec: dict, name: str):
    value = rec.get(name) or ""
    if not value:
        return None
    try:
        parsed = ctx.dates[name](value)
    except (ValueError, OverflowError) as exc:
        _problem(name, str(exc), value)
        return None
    problem = moment_problem(parsed, now=ctx.now)
    if problem:
        _problem(name, problem, value)
        return None
    return parsed


def _customer_key(ctx: Context, rec: dict) -> str:
    key = ctx.plan.customer_key
    if key == "customer_id":
        return _ident(rec, "customer_id")
    if key == "email":
        value = rec.get("email") or ""
        if not value:
            return ""
        try:
            return parse_email(value)
        except ValueError as exc:
            raise RowError("email", str(exc), value) from None
    return ""


def _currency(rec: dict) -> str:
    value = (rec.get("currency") or "").strip()
    if not value:
        return ""
    code = CURRENCY_SYMBOLS.get(value.lower(), value.upper())
    if len(code) != 3 or not code.isalpha():
        raise RowError("currency", "is not a 3-letter currency code such as EUR", value)
    return code


# What shop systems write for an order's payment (Shopify's Financial Status,
# WooCommerce's and Etsy's order status, Stripe's payment status), read as one of
# paid, pending, cancelled, refunded. Only paid orders are purchases and revenue.
STATUS_WORDS = {
    "paid": "paid",
    "completed": "paid",
    "complete": "paid",
    "processing": "paid",
    "succeeded": "paid",
    "captured": "paid",
    "shipped": "paid",
    "partially refunded": "paid",  # the order stands; the refunded part is not taken off
    "partially paid": "pending",
    "pending": "pending",
    "pending payment": "pending",
    "authorized": "pending",
    "authorised": "pending",
    "on-hold": "pending",
    "on hold": "pending",
    "unpaid": "pending",
    "uncaptured": "pending",
    "incomplete": "pending",
    "open": "pending",
    "draft": "pending",
    "checkout-draft": "pending",
    "awaiting payment": "pending",
    "not paid": "pending",
    "requires capture": "pending",
    "requires action": "pending",
    "requires confirmation": "pending",
    "in progress": "pending",
    "voided": "cancelled",
    "void": "cancelled",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "failed": "cancelled",
    "expired": "cancelled",
    "declined": "cancelled",
    "blocked": "cancelled",  # Stripe Radar
    "requires payment method": "cancelled",  # a Stripe payment that never went through
    "trash": "cancelled",  # WooCommerce's bin
    "refunded": "refunded",
    "fully refunded": "refunded",
    "disputed": "refunded",
}
ORDER_STATUSES = ("paid", "pending", "cancelled", "refunded")


def _status(rec: dict) -> str:
    """The order's payment status; '' when the row does not say (the order's other
    rows may; an order none of whose rows says is paid)."""
    value = (rec.get("status") or "").strip()
    if not value:
        return ""
    word = value.lower().removeprefix("wc-").replace("_", " ")
    status = STATUS_WORDS.get(word)
    if status is None:
        raise RowError(
            "status",
            "is not a payment status we know (paid, pending, authorized, voided, "
            "cancelled, refunded, failed, completed, processing, on-hold, …); if the "
            "column is not about payment, leave it unmapped",
            value,
        )
    return status


def _phone_key(value: str) -> str:
    """A phone number as a customer's identity: its digits, a leading + kept."""
    text = value.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("00"):
        text, digits = "+" + text[2:], digits[2:]
    if len(digits) < 6:
        return ""
    return ("+" if text.startswith("+") else "") + digits


# --- customers referenced by other kinds ------------------------------------------------------


class CustomerResolver:
    """Finds (or creates) the customers that orders, events and feedback name."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        # Ids already resolved in this import: later chunks need no query for them.
        self.known: dict[str, int] = {}
        # Keys of the last `resolve` not created: the plan's limit of customers.
        self.over_limit: set[str] = set()
        # Erased people, by what erasure kept: tombstone ids (exact id; keyed, or the
        # unkeyed form of older erasures) and keyed hashes of the id in any letter
        # case, the email and the phone number (customers.services.identity).
        self.tombstones: dict[str, dt.datetime] = dict(
            Customer.objects.filter(erased_at__isnull=False).values_list("external_id", "erased_at")
        )
        self.erased_digests: dict[tuple[str, str], dt.datetime] = {
            (kind, digest): at
            for kind, digest, at in ErasedIdentifier.objects.values_list(
                "kind", "digest", "erased_at"
            )
        }
        self._erased_memo: dict[tuple[str, str, str], dt.datetime | None] = {}

    def erased_on(self, external_id: str, email: str = "", phone: str = "") -> dt.datetime | None:
        """When the person these identifiers name was erased (None if they were not)."""
        if not (self.tombstones or self.erased_digests) or not (external_id or email or phone):
            return None
        key = (external_id, email, phone)
        if key not in self._erased_memo:
            if len(self._erased_memo) > CACHE_LIMIT:
                self._erased_memo.clear()
            self._erased_memo[key] = self._erased_on(external_id, email, phone)
        return self._erased_memo[key]

    def _erased_on(self, external_id: str, email: str, phone: str) -> dt.datetime | None:
        org_id = self.ctx.organization_id
        if external_id:
            for tombstone in erased_external_ids(org_id, external_id):
                if tombstone in self.tombstones:
                    return self.tombstones[tombstone]
        checks = [("id", external_id), ("email", email), ("phone", phone)]
        if self.ctx.plan.customer_key == "email":
            checks.append(("email", external_id))
        for kind, value in checks:
            for digest in identifier_digests(org_id, kind, value):
                when = self.erased_digests.get((kind, digest))
                if when is None:
                    continue
                # A live customer whose id differs from the erased one only in letter
                # case is somebody else.
                if (
                    kind == "id"
                    and Customer.objects.filter(
                        external_id=external_id.strip(), erased_at__isnull=True
                    ).exists()
                ):
                    continue
                return when
        return None

    def erased_message(self, external_id: str, email: str = "", phone: str = "") -> str | None:
        """The reason a row naming an erased person is refused. It names neither the
        person nor the identifier: the report must not keep what erasure removed."""
        when = self.erased_on(external_id, email, phone)
        if when is None:
            return None
        return f"this customer was erased on {timezone.localtime(when, self.ctx.tz):%Y-%m-%d}"

    def resolve(self, wanted: dict[str, str]) -> dict[str, int]:
        """{customer key: email or ""} → {customer key: id}, creating the unknown ones
        (as many as the plan's limit of customers allows: the keys it does not are in
        `over_limit`, and their rows must be rejected)."""
        self.over_limit = set()
        if not wanted:
            return {}
        db = self.ctx.db
        known = self.known
        ids = {k: known[k] for k in wanted if k in known}
        unknown = [k for k in wanted if k not in ids]
        if unknown:
            ids.update(db.select("customers_customer", "external_id", unknown, ["id"]))
        missing = [k for k in wanted if k not in ids]
        # Customers known by their email (an email-keyed file, or a row whose
        # customer id is blank): the stored customer with that address.
        by_email = [k for k in missing if self.ctx.plan.customer_key == "email" or wanted[k] == k]
        if by_email:
            found = db.select(
                "customers_customer", "email", by_email, ["id"], where=" AND erased_at IS NULL"
            )
            for email, cid in sorted(found, key=lambda r: r[1], reverse=True):
                ids[email] = cid  # the oldest customer with the address wins
            missing = [k for k in missing if k not in ids]
        # A buyer known by an international phone number: the customer with that phone.
        by_phone = [k for k in missing if k.startswith("+") and not wanted[k]]
        if by_phone:
            found = db.select(
                "customers_customer", "phone", by_phone, ["id"], where=" AND erased_at IS NULL"
            )
            for phone, cid in sorted(found, key=lambda r: r[1], reverse=True):
                ids[phone] = cid
            missing = [k for k in missing if k not in ids]
        allowed = self.ctx.customers_allowed(missing)
        self.over_limit = set(missing[len(allowed) :])
        missing = allowed
        if missing:
            now = timezone.now()
            rows: list[list] = []
            columns: list[str] = []
            for key in missing:
                columns, row = insert_columns(
                    Customer,
                    {
                        "external_id": key,
                        "email": wanted[key],
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                rows.append(row)
            ids.update(
                db.upsert("customers_customer", columns, rows, conflict="external_id", update=None)
            )
            self.ctx.counts.customers_created += len(missing)
        if len(known) > CACHE_LIMIT:
            known.clear()
        known.update(ids)
        return ids


# --- base processor ------------------------------------------------------------------


class Processor:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.pending: list = []
        self.occurrences: Counter = Counter()

    def feed(self, rownum: int, rec: dict, attrs: dict) -> bool:
        """Take one row; True when a chunk was written."""
        if self._refuse_nul(rownum, rec, attrs):
            return False
        problems: list[RowError] = []
        token = _row_problems.set(problems)
        try:
            item = self.parse(rownum, rec, attrs)
        except RowError as exc:
            # a problem that stops the reading; a field already at fault says it first
            if not any(p.field == exc.field for p in problems):
                problems.append(exc)
        finally:
            _row_problems.reset(token)
        if problems:
            resolver = getattr(self, "resolver", None)
            erased = resolver and resolver.erased_message(
                _cust(self.ctx, rec), rec.get("email") or "", rec.get("phone") or ""
            )
            if erased:
                # Refused either way; the report must not name the erased person.
                key = self.ctx.plan.customer_key or "customer_id"
                self.ctx.errors.add(rownum, self.ctx.plan.column(key), erased, "", "")
            else:
                for problem in problems:  # every problem of the row, in field order
                    self.ctx.errors.add(
                        rownum,
                        self.ctx.plan.column(problem.field),
                        problem.message,
                        problem.value,
                        _cust(self.ctx, rec),
                    )
            self.ctx.counts.add("rejected")
            return False
        return self.add(item)

    def _refuse_nul(self, rownum: int, rec: dict, attrs: dict) -> bool:
        """A row holding a NUL character is refused, naming each field that holds
        one: no database text column can store it (PostgreSQL refuses it, and
        would have refused the whole chunk naming only the row's key)."""
        where = [f for f, v in rec.items() if _holds_nul(v)]
        where += [name.replace("\x00", "") for name, v in attrs.items() if _holds_nul((name, v))]
        if not where:
            return False
        customer = _cust(self.ctx, rec).replace("\x00", "")
        if self.ctx.via == "import":
            outcome = f"this row of the {self.ctx.kind} file was not imported"
        else:
            outcome = f"this {self.ctx.kind} record was not stored"
        message = (
            f"contains a NUL character (a zero byte), which cannot be stored: {outcome}; "
            "remove the character and send it again"
        )
        for name in where:
            self.ctx.errors.add(rownum, self.ctx.plan.column(name), message, "", customer)
        self.ctx.counts.add("rejected")
        return True

    def add(self, item) -> bool:
        self.pending.append(item)
        if len(self.pending) >= self.ctx.chunk_size:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        self.write_chunk(items)

    def finish(self) -> None:
        self.flush()

    # What one item (a row, or an order's rows) is called in a rejection.
    key_field = "customer_id"

    def item_rows(self, item) -> tuple[list[int], str]:
        """(data rows, customer key) of one item of a chunk."""
        return [item.rownum], getattr(item, "customer", "") or getattr(item, "external_id", "")

    def write_chunk(self, items: list) -> None:
        """Write a chunk in one transaction. If the database refuses it, write it item
        by item, each in its own savepoint, so that only what cannot be stored is
        rejected (with the reason) and the rest lands."""
        try:
            self._attempt(items)
            return
        except STORE_ERRORS as exc:
            if len(items) == 1:
                self._refused(items[0], exc)
                return
            log.warning(
                "import.chunk_refused org=%s kind=%s items=%s error=%s",
                self.ctx.organization_id,
                self.ctx.kind,
                len(items),
                _first_line(exc),
            )
        for item in items:
            try:
                self._attempt([item])
            except STORE_ERRORS as exc:
                self._refused(item, exc)

    def _attempt(self, items: list) -> None:
        """`write` in a transaction whose counts, errors and remembered ids count only
        if it commits: a report never shows rows that were not stored."""
        ctx = self.ctx
        counts = dataclasses.replace(ctx.counts)
        changed = set(ctx.changed_customer_ids)
        errors, held = ctx.errors, _HeldErrors()
        ctx.errors = held
        try:
            with transaction.atomic():
                self.write(items)
        except BaseException:
            for f in dataclasses.fields(Counts):
                setattr(ctx.counts, f.name, getattr(counts, f.name))
            ctx.changed_customer_ids.clear()
            ctx.changed_customer_ids.update(changed)
            # Ids created in the rolled-back transaction no longer exist.
            ctx.products.clear()
            resolver = getattr(self, "resolver", None)
            if resolver is not None:
                resolver.known.clear()
            raise
        finally:
            ctx.errors = errors
        held.replay(errors)

    def _refused(self, item, exc: Exception) -> None:
        rownums, customer = self.item_rows(item)
        log.info(
            "import.item_refused org=%s kind=%s rows=%s error=%s",
            self.ctx.organization_id,
            self.ctx.kind,
            rownums[:5],
            _first_line(exc),
        )
        self.ctx.reject(
            rownums,
            self.key_field,
            f"could not be stored: the database refused a value ({_first_line(exc)})",
            "",
            customer,
        )

    def hashed_key(self, parts: list) -> str:
        """Id for a row without one: its content plus how often that content came before."""
        digest = content_hash(parts)[:24]
        self.occurrences[digest] += 1
        return f"h:{digest}:{self.occurrences[digest]}"

    def parse(self, rownum: int, rec: dict, attrs: dict):
        raise NotImplementedError

    def write(self, items: list) -> None:
        raise NotImplementedError


# The database driver's module (psycopg or sqlite3): every backend's wrapper has it,
# the stubs leave it out.
_DRIVER = connection.Database  # type: ignore[attr-defined]
# Errors that concern the values of a chunk (not the connection): retried item by item.
# The driver's own classes too: psycopg's COPY raises them unwrapped by Django.
STORE_ERRORS = (
    DataError,
    IntegrityError,
    ValueError,
    ArithmeticError,
    _DRIVER.DataError,
    _DRIVER.IntegrityError,
)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class _HeldErrors:
    """Row errors of a chunk, kept back until the chunk's transaction commits."""

    def __init__(self):
        self.entries: list[tuple] = []

    def add(self, *args, **kwargs) -> None:
        self.entries.append((args, kwargs))

    def replay(self, errors) -> None:
        for args, kwargs in self.entries:
            errors.add(*args, **kwargs)


def _holds_nul(value: Any) -> bool:
    """A NUL character anywhere in a value (an API record's attributes may nest)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def _cust(ctx: Context, rec: dict) -> str:
    key = getattr(ctx.plan, "customer_key", None)
    return (rec.get(key) or "") if key else ""


# --- customers -----------------------------------------------------------------------

# The customers file's columns other than the id (customers/fields.py), the consent
# records they change and the custom attributes: what a customers import writes.
CUSTOMER_FIELDS = [f.name for f in customer_fields.select(imported=True) if f.kind != "id"]
CUSTOMER_TEXT = customer_fields.text_max_lengths(customer_fields.select(imported=True))
CUSTOMER_STORED = [
    *CUSTOMER_FIELDS,
    *customer_fields.names(consent=True, imported=False),
    *customer_fields.names(kind="json"),
]
_PARSERS = {"latitude": parse_latitude, "longitude": parse_longitude, "bool": parse_bool}
CUSTOMER_PARSED = [
    (f.name, _PARSERS[f.kind]) for f in customer_fields.select(imported=True) if f.kind in _PARSERS
]
CUSTOMER_DATES = [
    f.name for f in customer_fields.select(imported=True) if f.kind in ("date", "datetime")
]


def new_customer_state(now: dt.datetime) -> dict:
    state = {name: customer_fields.FIELDS[name].blank for name in CUSTOMER_STORED}
    state["created_at"] = now
    return state


@dataclass
class CustomerRow:
    rownum: int
    external_id: str
    values: dict
    attrs: dict
    # the shop's own figures (Shopify's Total Orders, Total Spent): shown until the
    # customer's orders are imported
    figures: dict = field(default_factory=dict)


# A customers file's figures from the shop system, and the customer fields they fill.
PLATFORM_FIGURES = ("orders_count", "total_spent")


class CustomersProcessor(Processor):
    def parse(self, rownum, rec, attrs):
        ctx = self.ctx
        if ctx.plan.customer_key == "email":
            external_id = _customer_key(ctx, rec)
        else:
            external_id = _ident(rec, "customer_id")
        if not external_id:
            raise RowError(ctx.plan.customer_key or "customer_id", "is required")
        values: dict[str, Any] = {}
        for name, max_len in CUSTOMER_TEXT.items():
            if rec.get(name):
                values[name] = _text(rec, name, max_len)
        if rec.get("email"):
            values["email"] = _parse(rec, "email", parse_email)
        for name, parser in CUSTOMER_PARSED:
            value = _parse(rec, name, parser)
            if value is not None:
                values[name] = value
        for name in CUSTOMER_DATES:
            value = _date(ctx, rec, name)
            if value is not None:
                values[name] = value
        figures: dict[str, Any] = {}
        count = _parse(rec, "orders_count", parse_int)
        if count is not None:
            if 0 <= count <= 2_000_000_000:
                figures["orders_count"] = count
            else:
                _problem("orders_count", "is not a number of orders", rec.get("orders_count", ""))
        spent = _money(rec, "total_spent")
        if spent is not None:
            figures["total_spent"] = spent
        return CustomerRow(rownum, external_id, values, attrs, figures)

    def __init__(self, ctx: Context, split_ids=None):
        super().__init__(ctx)
        self.resolver = CustomerResolver(ctx)

    def write(self, items: list[CustomerRow]) -> None:
        ctx, db = self.ctx, self.ctx.db
        key_field = ctx.plan.customer_key or "customer_id"
        good = []
        for item in items:
            message = self.resolver.erased_message(
                item.external_id, item.values.get("email") or "", item.values.get("phone") or ""
            )
            if message:
                ctx.reject([item.rownum], key_field, message)
            else:
                good.append(item)
        keys = list(dict.fromkeys(i.external_id for i in good))
        existing = {}
        if keys:
            existing = {
                row["external_id"]: row
                for row in Customer.objects.filter(external_id__in=keys).values(
                    "id", "external_id", "created_at", *CUSTOMER_STORED, *PLATFORM_FIGURES
                )
            }
        self._adopt(good, existing)
        new_keys = [k for k in dict.fromkeys(i.external_id for i in good) if k not in existing]
        allowed = ctx.customers_allowed(new_keys)
        if len(allowed) < len(new_keys):
            refused = set(new_keys[len(allowed) :])
            for item in good:
                if item.external_id in refused:
                    ctx.reject_over_limit([item.rownum], item.external_id)
            good = [i for i in good if i.external_id not in refused]
        # Customers with stored orders: their figures are their orders', not the file's.
        with_orders = set()
        ids_with_figures = [
            existing[i.external_id]["id"] for i in good if i.figures and i.external_id in existing
        ]
        if ids_with_figures:
            with_orders = set(
                Order.objects.filter(customer_id__in=ids_with_figures)
                .values_list("customer_id", flat=True)
                .distinct()
            )
        figures: dict[str, dict] = {}
        now = timezone.now()
        state: dict[str, dict] = {}
        is_new: dict[str, bool] = {}
        touched: set[str] = set()
        # Consent goes through the consent service's rules and history.
        consent = ConsentBatch(
            actor=ctx.actor or Actor.system(ctx.source_label),
            source=ctx.source_label,
            via=ctx.via,
            now=now,
        )
        consent.held_via(existing)
        for item in good:
            key = item.external_id
            first = key not in state
            if first:
                is_new[key] = key not in existing
                state[key] = dict(existing[key]) if key in existing else new_customer_state(now)
            current, changed = state[key], False
            for name, value in item.values.items():
                if name not in CONSENT_FIELDS and current.get(name) != value:
                    current[name], changed = value, True
            if consent.apply(key, current, item.values):
                changed = True
            if item.figures and not (key in existing and existing[key]["id"] in with_orders):
                held = figures.get(key) or {
                    f: (existing[key][f] if key in existing else 0) for f in PLATFORM_FIGURES
                }
                wanted = {**held, **item.figures}
                if wanted != held:
                    figures[key], changed = wanted, True
            if item.attrs:
                merged = {**(current.get("attributes") or {}), **item.attrs}
                if merged != current.get("attributes"):
                    current["attributes"], changed = merged, True
            if is_new[key] and first:
                ctx.counts.add("created")
            else:
                ctx.counts.add("updated" if changed else "unchanged")
            if is_new[key] or changed:
                touched.add(key)
        if not touched:
            return
        rows: list[list] = []
        columns: list[str] = []
        for key in touched:
            s = state[key]
            values = {f: s[f] for f in CUSTOMER_STORED}
            values.update(external_id=key, created_at=s["created_at"], updated_at=now)
            columns, row = insert_columns(Customer, values)
            rows.append(row)
        # Only profile columns: the order statistics belong to the orders.
        update = [c for c in columns if c in CUSTOMER_STORED or c == "updated_at"]
        ids = db.upsert("customers_customer", columns, rows, conflict="external_id", update=update)
        db.insert("customers_consentchange", consent.HISTORY_COLUMNS, consent.history_rows(ids))
        if figures:
            # the shop's figures, for customers none of whose orders are stored
            db.executemany(
                "UPDATE customers_customer SET orders_count = %s, total_spent = %s "
                "WHERE organization_id = %s AND id = %s AND NOT EXISTS (SELECT 1 FROM "
                "customers_order o WHERE o.organization_id = customers_customer.organization_id "
                "AND o.customer_id = customers_customer.id)",
                [
                    [f["orders_count"], f["total_spent"], ctx.organization_id, ids[key]]
                    for key, f in figures.items()
                    if key in ids
                ],
            )

    def _adopt(self, items: list[CustomerRow], existing: dict) -> None:
        """A customer first met in an orders file (known by email) gets its real id
        when the customers file names both."""
        by_email = {
            i.values["email"]: i.external_id
            for i in items
            if i.external_id not in existing
            and i.values.get("email")
            and i.values["email"] != i.external_id
        }
        if not by_email:
            return
        for row in Customer.objects.filter(
            external_id__in=list(by_email), erased_at__isnull=True
        ).values("id", "external_id", "created_at", *CUSTOMER_STORED):
            new_id = by_email[row["external_id"]]
            if new_id in existing:
                continue
            Customer.objects.filter(pk=row["id"]).update(external_id=new_id)
            row["external_id"] = new_id
            existing[new_id] = row


# --- products ------------------------------------------------------------------------

PRODUCT_FIELDS = [
    "name",
    "category",
    "price",
    "url",
    "image_url",
    "in_stock",
    "merchandise",
    "merchandise_source",
    "hidden",
]
PRODUCT_TEXT = {"name": 500, "category": 255, "url": 1000, "image_url": 1000}
PRODUCT_URLS = ("url", "image_url")  # links on the product page: http(s) only


@dataclass
class ProductRow:
    rownum: int
    sku: str
    values: dict
    attrs: dict


class ProductsProcessor(Processor):
    key_field = "sku"

    def parse(self, rownum, rec, attrs):
        sku = _ident(rec, "sku")
        if not sku:
            raise RowError("sku", "is required")
        values: dict[str, Any] = {}
        for name, max_len in PRODUCT_TEXT.items():
            if rec.get(name):
                values[name] = _text(rec, name, max_len)
        for name in PRODUCT_URLS:
            if values.get(name):
                values[name] = values[name].strip()
                problem = web_url_problem(values[name])
                if problem:
                    _problem(name, problem, rec[name])
        price = _money(rec, "price")
        if price is not None:
            if price < 0:
                raise RowError("price", "cannot be negative", rec.get("price", ""))
            values["price"] = price
        for name in ("in_stock", "merchandise", "hidden"):
            flag = _parse(rec, name, parse_bool)
            if flag is not None:
                values[name] = flag
        if "merchandise" in values:
            # the file states it: detection leaves it alone from now on
            values["merchandise_source"] = MerchandiseSource.OWNER
        return ProductRow(rownum, sku, values, attrs)

    def write(self, items: list[ProductRow]) -> None:
        ctx, db = self.ctx, self.ctx.db
        keys = list(dict.fromkeys(i.sku for i in items))
        stored = [*PRODUCT_FIELDS, "attributes"]
        existing = {
            r["sku"]: r
            for r in Product.objects.filter(sku__in=keys).values("id", "sku", "created_at", *stored)
        }
        now = timezone.now()
        state, is_new, touched = {}, {}, set()
        for item in items:
            key = item.sku
            first = key not in state
            if first:
                if key in existing:
                    state[key], is_new[key] = dict(existing[key]), False
                else:
                    state[key] = {
                        "name": "",
                        "category": "",
                        "price": None,
                        "url": "",
                        "image_url": "",
                        "in_stock": None,
                        "merchandise": True,
                        "merchandise_source": MerchandiseSource.DETECTED,
                        "hidden": False,
                        "attributes": {},
                        "created_at": now,
                    }
                    is_new[key] = True
            current, changed = state[key], False
            for name, value in item.values.items():
                if current.get(name) != value:
                    current[name], changed = value, True
            if current["merchandise_source"] == MerchandiseSource.DETECTED:
                detected = is_merchandise(
                    sku=key, name=current["name"] or "", category=current["category"] or ""
                )
                if current["merchandise"] != detected:
                    current["merchandise"], changed = detected, True
            if item.attrs:
                merged = {**(current.get("attributes") or {}), **item.attrs}
                if merged != current.get("attributes"):
                    current["attributes"], changed = merged, True
            outcome = (
                "created" if is_new[key] and first else ("updated" if changed else "unchanged")
            )
            if is_new[key] or changed:
                touched.add(key)
            ctx.counts.add(outcome)
        rows: list[list] = []
        columns: list[str] = []
        for key in touched:
            s = state[key]
            values = {f: s[f] for f in stored}
            values.update(sku=key, created_at=s["created_at"], updated_at=now)
            columns, row = insert_columns(Product, values)
            rows.append(row)
        if rows:
            update = [c for c in columns if c not in ("created_at", "sku")]
            db.upsert(
                "customers_product", columns, rows, conflict="sku", update=update, returning=False
            )


def ensure_products(ctx: Context, wanted: dict[str, tuple[str, str]]) -> dict[str, int]:
    """{sku: (name, category)} → {sku: id}; unknown skus become products, and a
    product without a name or category gets the line's."""
    if not wanted:
        return {}
    db = ctx.db
    cache = ctx.products  # sku -> (id, has name, has category), for this import
    ids: dict[str, int] = {}
    ask = []
    for sku, (name, category) in wanted.items():
        hit = cache.get(sku)
        if hit is not None and (hit[1] or not name) and (hit[2] or not category):
            ids[sku] = hit[0]
        else:
            ask.append(sku)
    if not ask:
        return ids
    found = db.select("customers_product", "sku", ask, ["id", "name", "category"])
    for sku, pid, name, category in found:
        new_name = name or wanted[sku][0]
        new_category = category or wanted[sku][1]
        if (new_name, new_category) != (name, category):
            Product.objects.filter(pk=pid).update(name=new_name, category=new_category)
            # the line's name may be the first to say "POSTAGE" (a person's value stays)
            Product.objects.filter(pk=pid, merchandise_source=MerchandiseSource.DETECTED).update(
                merchandise=is_merchandise(sku=sku, name=new_name, category=new_category)
            )
        ids[sku] = pid
        cache[sku] = (pid, bool(new_name), bool(new_category))
    missing = [s for s in ask if s not in ids]
    if missing:
        now = timezone.now()
        rows: list[list] = []
        columns: list[str] = []
        for sku in missing:
            name, category = wanted[sku]
            columns, row = insert_columns(
                Product,
                {
                    "sku": sku,
                    "name": name,
                    "category": category,
                    "merchandise": is_merchandise(sku=sku, name=name, category=category),
                    "created_at": now,
                    "updated_at": now,
                },
            )
            rows.append(row)
        created = db.upsert("customers_product", columns, rows, conflict="sku", update=None)
        for sku, pid in created.items():
            ids[sku] = pid
            cache[sku] = (pid, bool(wanted[sku][0]), bool(wanted[sku][1]))
        ctx.counts.products_created += len(missing)
    if len(cache) > CACHE_LIMIT:
        cache.clear()
    return ids


# --- orders --------------------------------------------------------------------------

# The customer's address an orders row may carry, and its column sizes.
PROFILE_FIELDS = customer_fields.text_max_lengths(customer_fields.select(on_orders=True))
# ...and the name and phone number a shop writes on the order (a buyer known only
# by the phone).
ORDER_PROFILE = {**PROFILE_FIELDS, "phone": 64, "first_name": 150, "last_name": 150}
ORDER_CONSENT = ("accepts_email", "accepts_sms")


@dataclass
class LineRow:
    rownum: int
    order_id: str
    customer: str
    email: str
    ordered_at: dt.datetime | None
    currency: str
    channel: str
    location: str
    sku: str
    product_name: str
    category: str
    quantity: int
    unit_price: Decimal | None
    amount: Decimal
    props: dict
    own_order: bool = False  # a row without an order id is an order of its own
    profile: dict = field(default_factory=dict)  # the customer's address, when given
    status: str = ""  # paid, pending, cancelled, refunded; "" when the row does not say
    discount_code: str = ""
    discount_amount: Decimal | None = None
    # the order's shipping and taxes as this row gives them (added up per order)
    shipping_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    line_id: str = ""  # the integration's key of the line within its order
    product_id: int | None = None  # a stored line kept as it is (see _merge_stored_lines)


@dataclass
class AssembledOrder:
    key: str
    customer: str
    email: str
    ordered_at: dt.datetime
    currency: str
    channel: str
    location: str
    props: dict
    lines: list[LineRow]
    rownums: list[int]
    profile: dict = field(default_factory=dict)
    status: str = "paid"
    # the order's shipping and taxes, never in its lines' amounts; None: not given
    shipping_amount: Decimal | None = None
    tax_amount: Decimal | None = None

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), Decimal(0))

    @property
    def is_return(self) -> bool:
        if all(ln.quantity < 0 or ln.amount < 0 for ln in self.lines):
            return True
        k = self.key
        return len(k) > 1 and k[0] in "Cc" and k[1].isdigit() and self.total <= 0

    def hash(self) -> str:
        return content_hash(
            [
                self.customer,
                _utc(self.ordered_at),
                self.currency,
                self.channel,
                self.location,
                self.props,
                [
                    [
                        ln.sku,
                        ln.product_name,
                        ln.category,
                        ln.quantity,
                        str(ln.unit_price),
                        str(ln.amount),
                        # only when given: orders imported before keep their hash
                        *(
                            [ln.discount_code, str(ln.discount_amount)]
                            if ln.discount_code or ln.discount_amount is not None
                            else []
                        ),
                        *([ln.line_id] if ln.line_id else []),
                    ]
                    for ln in self.lines
                ],
                *([self.status] if self.status != "paid" else []),
                # only when given: orders imported before keep their hash
                *(
                    [["shipping_tax", str(self.shipping_amount), str(self.tax_amount)]]
                    if self.shipping_amount is not None or self.tax_amount is not None
                    else []
                ),
            ]
        )


class OrdersProcessor(Processor):
    """Groups rows into orders. Rows of one order id are one order; an order whose
    rows are scattered through the file (found by the engine's first pass) is set
    aside in a temporary file and written whole at the end."""

    key_field = "order_id"

    def item_rows(self, item: AssembledOrder) -> tuple[list[int], str]:
        return item.rownums, item.customer

    def __init__(self, ctx: Context, split_ids: set[str] | None = None):
        super().__init__(ctx)
        self.orders: dict[str, list[LineRow]] = {}
        self.pending_rows = 0
        self.current: str | None = None
        self.split_ids = split_ids or set()
        self._spool: tuple[sqlite3.Connection, Any] | None = None
        self.resolver = CustomerResolver(ctx)
        # customer id -> {field: ((ordered_at, row), value)}, written at the end
        self.profiles: dict[int, dict[str, tuple]] = {}

    def feed(self, rownum, rec, attrs) -> bool:
        oid = rec.get("order_id") or ""
        if oid and oid in self.split_ids:
            self._spool_row(oid, rownum, rec, attrs)
            return False
        return super().feed(rownum, rec, attrs)

    def parse(self, rownum, rec, attrs) -> LineRow:
        ctx = self.ctx
        order_id = _ident(rec, "order_id")
        customer = _customer_key(ctx, rec)
        email = ""
        if ctx.plan.customer_key == "customer_id" and rec.get("email"):
            email = _parse(rec, "email", parse_email) or ""
        elif ctx.plan.customer_key == "email":
            email = customer
        if not customer:
            # The best identifier the row has: a blank customer id gives way to the
            # email, then to the phone number (a cash-on-delivery buyer).
            customer = email or _phone_key(_ident(rec, "phone", 64))
        ordered_at = _date(ctx, rec, "ordered_at")
        quantity = _parse(rec, "quantity", parse_int)
        if quantity is None:
            quantity = 1
        if abs(quantity) > 2_000_000_000:
            raise RowError("quantity", "is too large", rec.get("quantity", ""))
        unit_price = _money(rec, "unit_price")
        amount = _money(rec, "amount")
        if amount is None:
            if unit_price is None:
                fld = "unit_price" if "unit_price" in ctx.plan.field_names else "amount"
                raise RowError(fld, "is required (give unit_price or amount)")
            amount = unit_price * quantity
            problem = money_problem(amount)
            if problem:
                # The line amount is what is stored (and summed into totals).
                raise RowError(
                    "amount",
                    f"the line amount quantity × unit_price ({quantity} × "
                    f"{unit_price.normalize():f}) = {problem}",
                    rec.get("unit_price", ""),
                )
            amount = amount.quantize(Q4)
        elif unit_price is None:
            unit_price = (amount / quantity).quantize(Q4) if quantity else None
        else:
            expected = unit_price * quantity
            if money_problem(expected) is None:
                expected = expected.quantize(Q4)
            tolerance = max(Decimal("0.01"), abs(quantity) * Decimal("0.005"))
            if abs(expected - amount) > tolerance:
                raise RowError(
                    "amount",
                    f"{amount.normalize():f} does not match quantity × unit_price "
                    f"({quantity} × {unit_price.normalize():f} = {expected.normalize():f})",
                    rec.get("amount", ""),
                )
        line = LineRow(
            rownum=rownum,
            order_id=order_id,
            customer=customer,
            email=email,
            ordered_at=ordered_at,
            currency=_currency(rec),
            channel=_text(rec, "channel", 64),
            location=_text(rec, "location", 255),
            sku=_ident(rec, "sku"),
            product_name=_text(rec, "product_name", 500),
            category=_text(rec, "category", 255),
            quantity=quantity,
            unit_price=unit_price,
            amount=amount,
            props=attrs,
            profile={
                f: value
                for f, max_len in ORDER_PROFILE.items()
                if (value := _text(rec, f, max_len).strip())
            },
            status=_status(rec),
            discount_code=_text(rec, "discount_code", 255).strip(),
            shipping_amount=_money(rec, "shipping_amount"),
            tax_amount=_money(rec, "tax_amount"),
            line_id=_ident(rec, "line_id"),
        )
        ctx.currencies[line.currency] += 1
        # the buyer's marketing consent as the order states it (Shopify's Accepts
        # Marketing): applied through the consent rules once the file is read
        for name in ORDER_CONSENT:
            flag = _parse(rec, name, parse_bool)
            if flag is not None:
                line.profile[name] = flag
        discount = _money(rec, "discount_amount")
        if discount is not None and discount:
            # Revenue is net of discounts: the line's amount is what was paid for it
            # (an order's discount, written on its first row, comes off that line).
            discount = abs(discount)
            net = amount - discount if amount >= 0 else amount + discount
            problem = money_problem(net)
            if problem:
                raise RowError("discount_amount", problem, rec.get("discount_amount", ""))
            line.amount, line.discount_amount = net, discount
        if not order_id:
            if ordered_at is None:
                raise RowError("ordered_at", "is required")
            line.order_id = self.hashed_key(
                [
                    customer,
                    _utc(ordered_at),
                    line.sku,
                    line.product_name,
                    line.category,
                    quantity,
                    str(unit_price),
                    str(amount),
                    line.currency,
                    line.channel,
                    line.location,
                    attrs,
                ]
            )
            line.own_order = True
        return line

    def add(self, line: LineRow) -> bool:
        key = line.order_id
        wrote = False
        if not line.own_order and key != self.current:
            # A new order id starts: every order held so far is complete.
            if self.pending_rows >= self.ctx.chunk_size:
                self.flush()
                wrote = True
            self.current = key
        self.orders.setdefault(key, []).append(line)
        self.pending_rows += 1
        return wrote

    def flush(self) -> None:
        if not self.orders:
            return
        orders, self.orders, self.pending_rows = self.orders, {}, 0
        assembled = [a for a in (self._assemble(k, rows) for k, rows in orders.items()) if a]
        if assembled:
            self.write_chunk(assembled)

    def finish(self) -> None:
        self._finish_orders()
        self._apply_profiles()

    def _finish_orders(self) -> None:
        self.flush()
        if self._spool is None:
            return
        conn, path = self._spool
        try:
            self.current = None
            for rownum, rec, attrs in conn.execute(
                "SELECT rownum, rec, attrs FROM rows ORDER BY order_id, rownum"
            ):
                super().feed(rownum, json.loads(rec), json.loads(attrs))
            self.flush()
        finally:
            conn.close()
            path.close()

    def _spool_row(self, oid, rownum, rec, attrs) -> None:
        if self._spool is None:
            tmp = tempfile.NamedTemporaryFile(suffix=".sqlite3")  # noqa: SIM115 - closed in finish()
            conn = sqlite3.connect(tmp.name)
            conn.execute("CREATE TABLE rows (order_id TEXT, rownum INTEGER, rec TEXT, attrs TEXT)")
            self._spool = (conn, tmp)
        self._spool[0].execute(
            "INSERT INTO rows VALUES (?, ?, ?, ?)",
            (oid, rownum, json.dumps(rec), json.dumps(attrs)),
        )

    def _assemble(self, key: str, rows: list[LineRow]) -> AssembledOrder | None:
        ctx = self.ctx
        customer, good = "", []
        for r in rows:
            if r.customer and customer and r.customer != customer:
                ctx.reject(
                    [r.rownum],
                    ctx.plan.customer_key or "customer_id",
                    f"order {key} belongs to customer {customer} (an earlier row), but this row names {r.customer}",
                    r.customer,
                    r.customer,
                )
                continue
            customer = customer or r.customer
            good.append(r)
        good = self._keyed_lines(key, good, customer)
        if not good:
            return None
        times = [r.ordered_at for r in good if r.ordered_at is not None]
        if not times:
            ctx.reject([r.rownum for r in good], "ordered_at", "is required", "", customer)
            return None
        _spread_discount(good)
        converted = _convert(ctx, good)
        problem = money_problem(sum((r.amount for r in good), Decimal(0)))
        if problem:
            ctx.reject(
                [r.rownum for r in good], "amount", f"the order total {problem}", "", customer
            )
            return None
        props: dict = dict(converted)
        for r in good:
            for k, v in r.props.items():
                props.setdefault(k, v)

        def first(attr: str) -> str:
            return next((getattr(r, attr) for r in good if getattr(r, attr)), "")

        def added(attr: str) -> Decimal | None:
            given = [getattr(r, attr) for r in good if getattr(r, attr) is not None]
            return sum(given, Decimal(0)) if given else None

        return AssembledOrder(
            key=key,
            customer=customer,
            email=first("email"),
            ordered_at=min(times),
            currency=first("currency"),
            channel=first("channel"),
            location=first("location"),
            props=props,
            lines=good,
            # a row may hold several lines (a WooCommerce order): each row counts once
            rownums=list(dict.fromkeys(r.rownum for r in good)),
            # the order's last row that gives each part of the address
            profile={k: v for r in good for k, v in r.profile.items()},
            status=first("status") or "paid",
            shipping_amount=added("shipping_amount"),
            tax_amount=added("tax_amount"),
        )

    def _keyed_lines(self, key: str, rows: list[LineRow], customer: str) -> list[LineRow]:
        """An order whose lines carry a `line_id` is upserted line by line: each key
        once, on every line, sorted by key (so the order's lines and hash do not
        depend on how its lines were split into batches)."""
        if not any(r.line_id for r in rows):
            return rows
        ctx, seen, good = self.ctx, set(), []
        for r in rows:
            if not r.line_id:
                message = f"is required: other lines of order {key} have one"
            elif r.line_id in seen:
                message = f"{r.line_id} is given twice for order {key}"
            else:
                seen.add(r.line_id)
                good.append(r)
                continue
            ctx.reject([r.rownum], "line_id", message, r.line_id, customer)
        good.sort(key=lambda r: _line_key_order(r.line_id))
        return good

    def _merge_stored_lines(self, orders: list[AssembledOrder], order_ids: dict[str, int]) -> None:
        """Keyed orders already stored: the lines sent replace the stored lines with
        their keys; the order's other keyed lines are kept (unkeyed stored lines are
        replaced by the keyed ones), and so are its properties not sent again."""
        db = self.ctx.db
        names = ["line_id", "product_id", "sku", "product_name", "category", "quantity"]
        names += ["unit_price", "amount", "discount_code", "discount_amount"]
        stored: dict[int, list[tuple]] = {}
        for row in db.select("customers_orderline", "order_id", order_ids.values(), names):
            if row[1]:
                stored.setdefault(row[0], []).append(row[1:])
        props, charges = {}, {}
        for oid, held, shipping, tax in db.select(
            "customers_order",
            "id",
            order_ids.values(),
            ["properties", "shipping_amount", "tax_amount"],
        ):
            props[oid], charges[oid] = held, (shipping, tax)
        for o in orders:
            oid = order_ids[o.key]
            sent = {ln.line_id for ln in o.lines}
            kept = [
                LineRow(
                    rownum=-1,
                    order_id=o.key,
                    customer=o.customer,
                    email="",
                    ordered_at=o.ordered_at,
                    currency=o.currency,
                    channel="",
                    location="",
                    sku=sku or "",
                    product_name=name or "",
                    category=category or "",
                    quantity=int(quantity),
                    unit_price=None if price is None else _decimal(price).quantize(Q4),
                    amount=_decimal(amount).quantize(Q4),
                    props={},
                    discount_code=code or "",
                    discount_amount=None if discount is None else _decimal(discount).quantize(Q4),
                    line_id=line_id,
                    product_id=product,
                )
                for line_id, product, sku, name, category, quantity, price, amount, code, discount in stored.get(
                    oid, []
                )
                if line_id not in sent
            ]
            if kept:
                o.lines = sorted([*o.lines, *kept], key=lambda r: _line_key_order(r.line_id))
            # the order's shipping and taxes, when this batch does not give them
            shipping, tax = charges.get(oid, (None, None))
            if o.shipping_amount is None and shipping is not None:
                o.shipping_amount = _decimal(shipping).quantize(Q4)
            if o.tax_amount is None and tax is not None:
                o.tax_amount = _decimal(tax).quantize(Q4)
            held = props.get(oid)
            if isinstance(held, str):
                held = json.loads(held or "{}")
            if held:
                o.props = {**held, **o.props}

    def _note_profile(self, order: AssembledOrder, cid: int | None) -> None:
        """Remember the address of the customer's latest order in the file."""
        if not cid or not order.profile:
            return
        when = (order.ordered_at, max(order.rownums))
        known = self.profiles.setdefault(cid, {})
        for f, value in order.profile.items():
            if f not in known or known[f][0] <= when:
                known[f] = (when, value)

    def _apply_profiles(self) -> None:
        """Fill the customers' profile fields from their latest orders in the file;
        a blank keeps the stored value."""
        if not self.profiles:
            return
        consents = {}
        for cid, known in self.profiles.items():
            stated = {f: known.pop(f) for f in ORDER_CONSENT if f in known}
            if stated:
                consents[cid] = stated
        self._apply_consent(consents)
        ctx, db = self.ctx, self.ctx.db
        names = list(ORDER_PROFILE)
        stored = {
            row[0]: dict(zip(names, row[1:], strict=True))
            for row in db.select("customers_customer", "id", list(self.profiles), names)
        }
        now = timezone.now()
        updates = []
        for cid, known in self.profiles.items():
            current = stored.get(cid)
            if current is None:
                continue
            wanted = {**current, **{f: value for f, (_, value) in known.items()}}
            if wanted != current:
                updates.append([*(wanted[f] for f in names), now, ctx.organization_id, cid])
        sets = ", ".join(f"{f} = %s" for f in [*names, "updated_at"])
        db.executemany(
            f"UPDATE customers_customer SET {sets} WHERE organization_id = %s AND id = %s",  # noqa: S608 - fixed names
            updates,
        )
        ctx.changed_customer_ids.update(u[-1] for u in updates)
        self.profiles = {}

    def _apply_consent(self, consents: dict[int, dict[str, tuple]]) -> None:
        """The consent the customers' latest orders in the file state, through the
        consent service's rules (a person's own unsubscribe stands unless a later
        order grants it again; an order older than the held consent changes
        nothing); the time of the order is the time the consent was stated."""
        if not consents:
            return
        ctx, db = self.ctx, self.ctx.db
        existing = {
            row["external_id"]: row
            for row in Customer.objects.filter(
                pk__in=list(consents), erased_at__isnull=True
            ).values("id", "external_id", *CONSENT_FIELDS)
        }
        now = timezone.now()
        batch = ConsentBatch(
            actor=ctx.actor or Actor.system(ctx.source_label),
            source=ctx.source_label,
            via=ctx.via,
            now=now,
        )
        batch.held_via(existing)
        updates = []
        for key, row in existing.items():
            values: dict[str, Any] = {}
            for name, ((ordered_at, _), flag) in consents[row["id"]].items():
                values[name] = flag
                values[f"{name.removeprefix('accepts_')}_consent_at"] = ordered_at
            state = dict(row)
            if batch.apply(key, state, values):
                updates.append(
                    [*(state[f] for f in CONSENT_FIELDS), now, ctx.organization_id, row["id"]]
                )
        sets = ", ".join(f"{f} = %s" for f in [*CONSENT_FIELDS, "updated_at"])
        db.executemany(
            f"UPDATE customers_customer SET {sets} WHERE organization_id = %s AND id = %s",  # noqa: S608 - fixed names
            updates,
        )
        db.insert(
            "customers_consentchange",
            batch.HISTORY_COLUMNS,
            batch.history_rows({key: row["id"] for key, row in existing.items()}),
        )
        ctx.changed_customer_ids.update(u[-1] for u in updates)

    def write(self, orders: list[AssembledOrder]) -> None:
        ctx, db = self.ctx, self.ctx.db
        # Customers: erased ones refuse their orders; unknown ones are created.
        wanted: dict[str, str] = {}
        kept = []
        for o in orders:
            if o.customer:
                message = self.resolver.erased_message(o.customer, o.email)
                if message:
                    ctx.reject(o.rownums, ctx.plan.customer_key or "customer_id", message)
                    continue
                if not wanted.get(o.customer):
                    wanted[o.customer] = o.email
            kept.append(o)
        orders = kept
        if not orders:
            return
        customer_ids = self.resolver.resolve(wanted)
        if self.resolver.over_limit:
            over = self.resolver.over_limit
            for o in orders:
                if o.customer in over:
                    ctx.reject_over_limit(o.rownums, o.customer)
            orders = [o for o in orders if o.customer not in over]
            if not orders:
                return
        # Products: unknown skus are created.
        skus: dict[str, tuple[str, str]] = {}
        for o in orders:
            for ln in o.lines:
                if ln.sku and (ln.sku not in skus or not skus[ln.sku][0]):
                    skus[ln.sku] = (ln.product_name, ln.category)
        product_ids = ensure_products(ctx, skus)
        # Orders: unchanged ones are left alone; the others are written whole.
        existing = {
            ext: (oid, digest, cust, _decimal(total))
            for ext, oid, digest, cust, total in db.select(
                "customers_order",
                "external_id",
                [o.key for o in orders],
                ["id", "content_hash", "customer_id", "total"],
            )
        }
        deleted = {} if ctx.allow_deleted else deleted_orders(db, [o.key for o in orders])
        keyed = [o for o in orders if o.key in existing and any(ln.line_id for ln in o.lines)]
        if keyed:
            self._merge_stored_lines(keyed, {o.key: existing[o.key][0] for o in keyed})
        totals = CustomerTotals(db, [*customer_ids.values(), *(e[2] for e in existing.values())])
        now = timezone.now()
        changed: list = []
        rows: list[list] = []
        columns: list[str] = []
        recompute: set[int] = set()  # customers of replaced orders: read their orders again
        deltas: dict[int, StatsDelta] = {}  # customers of new orders: add them
        for o in orders:
            digest = o.hash()
            before = existing.get(o.key)
            if o.key not in deleted:
                self._note_profile(o, customer_ids.get(o.customer) if o.customer else None)
            if before is not None and before[1] == digest:
                ctx.counts.add("unchanged", len(o.rownums))
                continue
            if o.key in deleted:
                ctx.reject(o.rownums, "order_id", deleted[o.key], o.key, o.customer)
                continue
            cid = customer_ids.get(o.customer) if o.customer else None
            # an order in another currency is a purchase, but its amount is not
            # added to the customer's total_spent (the organisation's currency)
            spent = o.total if ctx.own_currency(o.currency) else Decimal(0)
            problem = totals.move(old=(before[2], before[3]) if before else None, new=(cid, spent))
            if problem:
                ctx.reject(
                    o.rownums,
                    "amount",
                    f"the customer {o.customer}'s total spent would become {problem}",
                    "",
                    o.customer,
                )
                continue
            ctx.counts.add("updated" if before else "created", len(o.rownums))
            if before is not None:
                recompute.update(c for c in (before[2], cid) if c)
            elif cid and o.status == "paid":  # pending, cancelled, refunded: no purchase
                deltas.setdefault(cid, StatsDelta()).add(
                    ordered_at=o.ordered_at, total=spent, is_return=o.is_return
                )
            changed.append(o)
            columns = [
                "external_id",
                "customer_id",
                "ordered_at",
                "currency",
                "channel",
                "location",
                "total",
                "shipping_amount",
                "tax_amount",
                "is_return",
                "status",
                "properties",
                "content_hash",
                "lines_count",
                "created_at",
                "updated_at",
            ]
            rows.append(
                [
                    o.key,
                    cid,
                    o.ordered_at,
                    o.currency,
                    o.channel,
                    o.location,
                    o.total,
                    o.shipping_amount,
                    o.tax_amount,
                    o.is_return,
                    o.status,
                    o.props,
                    digest,
                    len(o.lines),
                    now,
                    now,
                ]
            )
        if not changed:
            return
        # Customers still showing a customers export's figures (no order stored yet):
        # their first orders replace those figures, they are not added to them.
        named = {customer_ids.get(o.customer) for o in changed if o.customer}
        recompute.update(_platform_figures(db, {c for c in named if c} - recompute))
        update = [c for c in columns if c not in ("external_id", "created_at")]
        order_ids = db.upsert(
            "customers_order", columns, rows, conflict="external_id", update=update
        )
        replaced = [existing[o.key][0] for o in changed if o.key in existing]
        if replaced:
            db.delete_in("customers_orderline", "order_id", replaced)
        line_rows = []
        for o in changed:
            oid = order_ids[o.key]
            for position, ln in enumerate(o.lines):
                line_rows.append(
                    [
                        oid,
                        (product_ids.get(ln.sku) if ln.sku else None) or ln.product_id,
                        ln.sku,
                        ln.product_name,
                        ln.category,
                        ln.quantity,
                        ln.unit_price,
                        ln.amount,
                        ln.discount_code,
                        ln.discount_amount,
                        position,
                        ln.line_id,
                    ]
                )
        db.insert(
            "customers_orderline",
            [
                "order_id",
                "product_id",
                "sku",
                "product_name",
                "category",
                "quantity",
                "unit_price",
                "amount",
                "discount_code",
                "discount_amount",
                "position",
                "line_id",
            ],
            line_rows,
        )
        if ctx.allow_deleted:
            db.delete_in("customers_deletedorder", "external_id", [o.key for o in changed])
        customer_stats_refresh(organization_id=ctx.organization_id, customer_ids=recompute)
        customer_stats_add(db=db, deltas={c: d for c, d in deltas.items() if c not in recompute})
        # their totals changed: integrations reading ?updated_since= see them
        customers_touch(customer_ids=[*recompute, *deltas], when=now)
        ctx.changed_customer_ids.update(recompute, deltas)


def _platform_figures(db: BulkDb, customer_ids: set[int]) -> set[int]:
    """Of these customers, those whose figures (orders_count, total_spent) came from
    a customers export: not zero, and no order of theirs stored."""
    if not customer_ids:
        return set()
    found = db.select(
        "customers_customer",
        "id",
        customer_ids,
        [],
        where=" AND (orders_count <> 0 OR total_spent <> 0) AND NOT EXISTS ("
        "SELECT 1 FROM customers_order o WHERE o.organization_id = customers_customer."
        "organization_id AND o.customer_id = customers_customer.id)",
    )
    return {row[0] for row in found}


def _convert(ctx: Context, lines: list[LineRow]) -> dict[str, str]:
    """An order in another currency than the organisation's, for which the owner
    gave a rate: its amounts in the organisation's currency (the order says what it
    was: `original_currency`, `original_total`, `exchange_rate`). Without a rate the
    order keeps its own currency and is never added to the organisation's figures."""
    currency = next((ln.currency for ln in lines if ln.currency), "")
    rate = ctx.rates.get(currency) if not ctx.own_currency(currency) else None
    if rate is None:
        return {}
    original = sum((ln.amount for ln in lines), Decimal(0))
    for ln in lines:
        ln.amount = (ln.amount * rate).quantize(Q4)
        if ln.unit_price is not None:
            ln.unit_price = (ln.unit_price * rate).quantize(Q4)
        if ln.discount_amount:
            ln.discount_amount = (ln.discount_amount * rate).quantize(Q4)
        for name in ("shipping_amount", "tax_amount"):
            if getattr(ln, name) is not None:
                setattr(ln, name, (getattr(ln, name) * rate).quantize(Q4))
        ln.currency = ctx.currency
    return {
        "original_currency": currency,
        "original_total": f"{original.normalize():f}",
        "exchange_rate": f"{rate.normalize():f}",
    }


def _line_key_order(line_id: str) -> tuple:
    """Line keys in their natural order: 2 before 10."""
    return (0, int(line_id), "") if line_id.isdigit() and len(line_id) < 19 else (1, 0, line_id)


def _spread_discount(lines: list[LineRow]) -> None:
    """An order's discount written on one line (Shopify's Discount Amount is on the
    order's first row) can be larger than that line: then the order's discounts are
    shared among its sold lines in proportion to their amounts, so that no line
    (and no product's revenue) goes below zero. The order's total is the same."""
    if not any(
        ln.discount_amount and ln.amount < 0 <= ln.amount + ln.discount_amount for ln in lines
    ):
        return
    gross = {id(ln): ln.amount + (ln.discount_amount or 0) for ln in lines}
    sold = [ln for ln in lines if gross[id(ln)] > 0]
    base = sum((gross[id(ln)] for ln in sold), Decimal(0))
    total = sum((ln.discount_amount or Decimal(0) for ln in sold), Decimal(0))
    if not sold or base <= 0 or total > base:
        return  # more discount than goods: left as written
    left = total
    for i, ln in enumerate(sold):
        share = left if i == len(sold) - 1 else (total * gross[id(ln)] / base).quantize(Q4)
        left -= share
        ln.discount_amount = share
        ln.amount = gross[id(ln)] - share


def _decimal(value) -> Decimal:
    """A money column as read by a raw cursor (SQLite may give a float or text)."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


class CustomerTotals:
    """The customers' `total_spent` as the orders of a chunk would leave it, so an
    order that would push a total past what the column holds is refused."""

    def __init__(self, db: BulkDb, customer_ids):
        ids = {c for c in customer_ids if c}
        self.totals = {
            cid: _decimal(total)
            for cid, total in (
                db.select("customers_customer", "id", ids, ["total_spent"]) if ids else []
            )
        }

    def move(
        self, *, old: tuple[int | None, Decimal] | None, new: tuple[int | None, Decimal]
    ) -> str | None:
        """Replace an order's `old` (customer, total) by `new`; the problem, or None
        (and then the totals are updated)."""
        trial: dict[int, Decimal] = {}
        if old is not None and old[0]:
            trial[old[0]] = self.totals.get(old[0], Decimal(0)) - old[1]
        cid, total = new
        if cid:
            trial[cid] = trial.get(cid, self.totals.get(cid, Decimal(0))) + total
        for value in trial.values():
            problem = money_problem(value)
            if problem:
                return problem
        self.totals.update(trial)
        return None


def deleted_orders(db: BulkDb, keys: list[str]) -> dict[str, str]:
    """{order id: why it is skipped} for orders a person deleted."""
    found = db.select("customers_deletedorder", "external_id", keys, ["deleted_at"])
    return {
        key: (
            f"order {key} was deleted by a person on {str(when)[:10]}; it is not imported again "
            "unless you ask for it (import option allow_deleted, or 'Bring back deleted "
            "orders' in the import form)"
        )
        for key, when in found
    }


# --- events and feedback ---------------------------------------------------------------


@dataclass
class KeyedRow:
    rownum: int
    key: str
    customer: str
    email: str
    digest: str
    values: dict


class _KeyedProcessor(Processor):
    """Rows keyed by their own id (or a content hash), upserted whole."""

    table = ""
    model: type[models.Model] = Event
    customer_required = True

    def __init__(self, ctx: Context, split_ids=None):
        super().__init__(ctx)
        self.resolver = CustomerResolver(ctx)

    def write(self, items: list[KeyedRow]) -> None:
        ctx, db = self.ctx, self.ctx.db
        wanted: dict[str, Any] = {}
        kept: list = []
        for item in items:
            if item.customer:
                message = self.resolver.erased_message(item.customer, item.email)
                if message:
                    ctx.reject([item.rownum], ctx.plan.customer_key or "customer_id", message)
                    continue
                if not wanted.get(item.customer):
                    wanted[item.customer] = item.email
            kept.append(item)
        if not kept:
            return
        customer_ids = self.resolver.resolve(wanted)
        if self.resolver.over_limit:
            over = self.resolver.over_limit
            for item in kept:
                if item.customer in over:
                    ctx.reject_over_limit([item.rownum], item.customer)
            kept = [i for i in kept if i.customer not in over]
            if not kept:
                return
        existing = dict(
            db.select(self.table, "external_id", {i.key for i in kept}, ["content_hash"])
        )
        final: dict[str, KeyedRow] = {}
        for item in kept:
            before = final[item.key].digest if item.key in final else existing.get(item.key)
            if before is None:
                outcome = "created"
            else:
                outcome = "unchanged" if before == item.digest else "updated"
            ctx.counts.add(outcome)
            if before != item.digest:
                final[item.key] = item
        if not final:
            return
        now = timezone.now()
        rows: list[list] = []
        columns: list[str] = []
        for item in final.values():
            values = dict(item.values)
            values.update(
                external_id=item.key,
                customer_id=customer_ids.get(item.customer) if item.customer else None,
                content_hash=item.digest,
            )
            values[self.created_field] = now
            columns, row = insert_columns(self.model, values)
            rows.append(row)
        update = [c for c in columns if c not in ("external_id", self.created_field)]
        db.upsert(self.table, columns, rows, conflict="external_id", update=update, returning=False)

    created_field = "created_at"


class EventsProcessor(_KeyedProcessor):
    key_field = "event_id"
    table = "customers_event"
    model = Event
    created_field = "created_at"

    def parse(self, rownum, rec, attrs):
        customer = _customer_key(self.ctx, rec)
        if not customer:
            raise RowError(self.ctx.plan.customer_key or "customer_id", "is required")
        occurred_at = _date(self.ctx, rec, "occurred_at")
        if occurred_at is None:
            raise RowError("occurred_at", "is required")
        type_ = rec.get("type") or ""
        if not type_:
            raise RowError("type", "is required")
        if len(type_) > 100:
            raise RowError("type", "is longer than 100 characters", type_[:50])
        if type_.strip().lower() in SEGMENTA_EVENT_TYPES:
            raise RowError(
                "type",
                "is a type Segmenta writes itself (messages, conversions, offers, loyalty, "
                "surveys); give your event another name",
                type_,
            )
        parts = [customer, type_, _utc(occurred_at), attrs]
        key = _ident(rec, "event_id") or self.hashed_key(parts)
        email = customer if self.ctx.plan.customer_key == "email" else ""
        return KeyedRow(
            rownum,
            key,
            customer,
            email,
            content_hash(parts),
            {"type": type_, "occurred_at": occurred_at, "properties": attrs},
        )


class FeedbackProcessor(_KeyedProcessor):
    key_field = "feedback_id"
    table = "customers_feedback"
    model = Feedback
    created_field = "imported_at"

    def parse(self, rownum, rec, attrs):
        customer = _customer_key(self.ctx, rec)
        created_at = _date(self.ctx, rec, "created_at")
        if created_at is None:
            raise RowError("created_at", "is required")
        # A rating that is not a number ("n/a", "-", "five") is no rating: the
        # feedback is kept with its rating blank (values.parse_rating).
        rating = _parse(rec, "rating", parse_rating)
        # Line breaks inside a quoted review are kept, written as "\n" whatever
        # the file used (Windows CR LF, old-Mac CR).
        text = (rec.get("text") or "").replace("\r\n", "\n").replace("\r", "\n")
        if rating is None and not text:
            raise RowError("text", "is required (give text or a rating)")
        source = _text(rec, "source", 64)
        parts = [customer, _utc(created_at), source, rating, text, attrs]
        key = _ident(rec, "feedback_id") or self.hashed_key(parts)
        email = customer if self.ctx.plan.customer_key == "email" else ""
        return KeyedRow(
            rownum,
            key,
            customer,
            email,
            content_hash(parts),
            {
                "created_at": created_at,
                "source": source,
                "rating": rating,
                "text": text,
                "properties": attrs,
            },
        )


PROCESSORS = {
    "customers": CustomersProcessor,
    "products": ProductsProcessor,
    "orders": OrdersProcessor,
    "events": EventsProcessor,
    "feedback": FeedbackProcessor,
}


def make_processor(ctx: Context, split_ids: set[str] | None = None) -> Processor:
    cls = PROCESSORS[ctx.kind]
    if cls is ProductsProcessor:
        return cls(ctx)
    return cls(ctx, split_ids)
