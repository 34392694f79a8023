"""Privacy requests: everything held on one person, erasing a person, exporting
and deleting a whole organisation."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Membership, Role
from accounts.services import audit_log
from accounts.tenancy import require_organization_id, tenant_context
from core.exceptions import ApplicationError, PermissionDenied
from core.jobs import job_start
from core.models import Job

from .. import fields as customer_fields
from .. import registry
from ..models import (
    ConsentChange,
    Customer,
    CustomerChange,
    ErasedIdentifier,
    Event,
    Feedback,
    Import,
    Order,
    OrderLine,
    Product,
)
from .consent import consent_history_erase
from .exports import csv_safe
from .identity import (
    erased_external_id,
    erased_external_ids,
    identifier_digest,
    identifier_digests,
)
from .importing import org_media_dir, org_media_remove
from .imports.columns import build_plan
from .imports.reader import RowStream, SourceInfo

log = logging.getLogger("segmenta.privacy")

# What erasure leaves in the person's fields: each one's empty value (customers/fields.py).
PERSONAL_BLANK = {f.name: f.blank for f in customer_fields.select(personal=True)}


def _iso(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _stat(field, value):
    return str(value) if field.kind == "money" else _iso(value)


# --- one person ------------------------------------------------------------------------


def customer_export_data(*, customer: Customer) -> dict:
    """Everything held on one person, as JSON-ready data."""
    from ..selectors import customer_segment_info

    profile = {f: _iso(getattr(customer, f)) for f in customer_fields.names(profile=True)}
    orders = []
    for order in customer.orders.all().prefetch_related("lines").order_by("ordered_at"):
        orders.append(
            {
                "order_id": order.external_id,
                "ordered_at": _iso(order.ordered_at),
                "currency": order.currency,
                "channel": order.channel,
                "location": order.location,
                "total": str(order.total),
                "is_return": order.is_return,
                "properties": order.properties,
                "lines": [
                    {
                        "sku": ln.sku,
                        "product_name": ln.product_name,
                        "category": ln.category,
                        "quantity": ln.quantity,
                        "unit_price": None if ln.unit_price is None else str(ln.unit_price),
                        "amount": str(ln.amount),
                    }
                    for ln in ln_sorted(order)
                ],
            }
        )
    enrichment = customer_segment_info([customer.pk]).get(customer.pk, {})
    extra = {}
    for exporter in registry.person_exporters():  # what other capabilities hold on them
        extra.update(exporter(customer=customer) or {})
    return {
        "exported_at": timezone.now().isoformat(),
        "organization": customer.organization.name,
        "customer": profile,
        "consent": {
            "email": {
                "granted": customer.accepts_email,
                "since": _iso(customer.email_consent_at),
                "source": customer.email_consent_source,
            },
            "sms": {
                "granted": customer.accepts_sms,
                "since": _iso(customer.sms_consent_at),
                "source": customer.sms_consent_source,
            },
            "history": [
                {
                    "channel": c.channel,
                    "granted": c.granted,
                    "changed_at": _iso(c.changed_at),
                    "source": c.source,
                    "via": c.via,
                    "recorded_by": c.actor_label,
                    "recorded_at": _iso(c.recorded_at),
                }
                for c in customer.consent_changes.all()
            ],
        },
        "statistics": {
            f.name: _stat(f, getattr(customer, f.name))
            for f in customer_fields.select(statistic=True)
        },
        "orders": orders,
        "events": [
            {
                "event_id": e.external_id,
                "type": e.type,
                "occurred_at": _iso(e.occurred_at),
                "properties": e.properties,
            }
            for e in customer.events.all().order_by("occurred_at")
        ],
        "feedback": [
            {
                "feedback_id": f.external_id,
                "created_at": _iso(f.created_at),
                "source": f.source,
                "rating": f.rating,
                "text": f.text,
                "properties": f.properties,
            }
            for f in customer.feedback.all().order_by("created_at")
        ],
        "segments": {k: v for k, v in enrichment.items()},
        **extra,
    }


def ln_sorted(order: Order) -> list[OrderLine]:
    return sorted(order.lines.all(), key=lambda ln: ln.position)


def customer_export_record(*, customer: Customer, actor=None, request=None) -> dict:
    data = customer_export_data(customer=customer)
    audit_log(
        organization=customer.organization,
        action="data_exported",
        actor=actor,
        target=f"customer #{customer.pk}",
        details={"scope": "customer"},
        request=request,
    )
    return data


IDENTITY_KEYS = {"customer_id", "external_id", "customer", "email", "phone", "value"}


def _mentions(value, needles: set[str], key: str = "") -> bool:
    """An identifier under a key that holds one, or an email address anywhere."""
    if isinstance(value, str):
        low = value.strip().lower()
        if key in IDENTITY_KEYS and low in needles:
            return True
        return any(n in low for n in needles if "@" in n)
    if isinstance(value, dict):
        return any(_mentions(v, needles, k) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, needles, key) for v in value)
    return False


def scrub_json(value, needles: set[str]):
    """Drop list entries that name the person; replace strings holding their email."""
    if isinstance(value, list):
        return [
            scrub_json(v, needles)
            for v in value
            if not (isinstance(v, dict) and _mentions(v, needles))
        ]
    if isinstance(value, dict):
        return {k: scrub_json(v, needles) for k, v in value.items()}
    if isinstance(value, str) and _mentions(value, needles):
        return "[erased]"
    return value


def _needles(identifiers: dict) -> set[str]:
    return {str(v).strip().lower() for v in identifiers.values() if v and len(str(v).strip()) >= 1}


def _idempotent_answers_forget(needles: set[str]) -> None:
    from core.models import IdempotencyKey

    if not needles:
        return
    naming = Q()
    for needle in needles:
        naming |= Q(response_body__icontains=needle)
    IdempotencyKey.objects.filter(naming).delete()


@transaction.atomic
def customer_erase(
    *, customer: Customer, actor=None, request=None, sync_files: bool = False
) -> Customer:
    """Erase a person: personal fields removed, orders kept without identity, the id,
    email and phone remembered only as keyed hashes so later data naming any of them
    is refused. Nothing written here names the person (the clean-up job finds their
    rows in stored files through the same hashes)."""
    if customer.erased_at is not None:
        raise ApplicationError("This customer's data was already erased.")
    organization = customer.organization
    identifiers = {
        "external_id": customer.external_id,
        "email": customer.email,
        "phone": customer.phone,
    }
    now = timezone.now()
    orders = Order.objects.filter(customer=customer)
    orders_kept = orders.count()
    orders.update(customer=None, properties={}, updated_at=now)
    Event.objects.filter(customer=customer).delete()
    Feedback.objects.filter(customer=customer).delete()
    CustomerChange.objects.filter(customer=customer).delete()
    consent_history_erase(customer_ids=[customer.pk])
    for handler in registry.erasure_handlers():
        handler(organization=organization, customer_ids=[customer.pk])
    Customer.objects.filter(pk=customer.pk).update(
        external_id=erased_external_id(organization.pk, customer.external_id),
        erased_at=now,
        updated_at=now,
        **PERSONAL_BLANK,
    )
    erasure_remember(organization_id=organization.pk, identifiers=identifiers, erased_at=now)
    # Reports and job results name rows by customer id; drop those entries.
    needles = _needles(identifiers)
    for imp in Import.objects.exclude(errors=[]).only("id", "errors"):
        cleaned = scrub_json(imp.errors, needles)
        if cleaned != imp.errors:
            Import.objects.filter(pk=imp.pk).update(errors=cleaned)
    for job in Job.objects.exclude(result={}).only("id", "result"):
        cleaned = scrub_json(job.result, needles)
        if cleaned != job.result:
            Job.objects.filter(pk=job.pk).update(result=cleaned)
    # kept answers of API writes (a day's replay cache) that name the person go
    _idempotent_answers_forget(needles)
    audit_log(
        organization=organization,
        action="data_erased",
        actor=actor,
        target=f"customer #{customer.pk}",
        details={"orders_kept_without_identity": orders_kept},
        request=request,
    )
    # Export archives made so far hold the person: they go (the download refuses
    # any archive begun before an erasure even if a file is left behind).
    organization_exports_withdraw(erased_at=now)
    from ..tasks import erasure_scrub

    # Stored upload files are rewritten in the background. The job carries no
    # parameters: it removes every erased person's rows, found by keyed hash, so a
    # clean-up that never finished is made good by the next one.
    job_start(
        organization=organization,
        kind=ERASURE_JOB_KIND,
        task=erasure_scrub,
        params={},
        user=actor,
        title="Remove erased people from stored files",
        sync=sync_files,
    )
    from webhooks.events import emit

    # the id only: the receiver erases its own copy; no identifier of the person
    emit(
        organization,
        "customer.erased",
        {"customer_id": customer.pk, "erased_at": now.isoformat()},
    )
    customer.refresh_from_db()
    return customer


def _rewrite_csv(path: Path, keep, *, info: SourceInfo | None = None) -> int:
    """Rewrite a stored CSV (or .csv.gz) without the rows `keep(cells)` refuses."""
    removed = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    src: IO[str] | RowStream | None = None
    rows: Iterator[tuple[int, list[str]]]
    try:
        if info is None:
            src = open(path, newline="", encoding="utf-8")  # noqa: SIM115
            reader = csv.reader(src)
            header = next(reader, [])
            rows = ((i, r) for i, r in enumerate(reader, start=1))
            encoding, delimiter, gz = "utf-8", ",", False
        else:
            stream = RowStream(info)
            header = stream.header
            rows = iter(stream)
            src = stream
            encoding, delimiter, gz = info.encoding, info.delimiter, info.gzip
        opener = gzip.open if gz else open
        with opener(tmp, "wt", newline="", encoding=encoding, errors="replace") as out:
            writer = csv.writer(out, delimiter=delimiter)
            writer.writerow(header)
            for _, cells in rows:
                if keep(cells):
                    writer.writerow(cells)
                else:
                    removed += 1
        if removed:
            os.replace(tmp, path)
    finally:
        if src is not None:
            src.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return removed


ERASURE_JOB_KIND = "erasure"  # the clean-up job (core.jobs refuses to cancel it)

_IDENTIFIER_KEYS = (("id", "external_id"), ("email", "email"), ("phone", "phone"))


def erasure_remember(*, organization_id: int, identifiers: dict, erased_at) -> None:
    """Store the keyed hash of each identifier erasure removed (never the value)."""
    rows = []
    for kind, key in _IDENTIFIER_KEYS:
        digest = identifier_digest(organization_id, kind, identifiers.get(key))
        if digest:
            rows.append(
                ErasedIdentifier(
                    organization_id=organization_id, kind=kind, digest=digest, erased_at=erased_at
                )
            )
    ErasedIdentifier.objects.bulk_create(rows, ignore_conflicts=True)


def erased_identifier_exists(*, organization_id: int, kind: str, value: str) -> bool:
    """Whether `value` (an email or phone number) belonged to an erased person."""
    digests = identifier_digests(organization_id, kind, value)
    return bool(digests) and ErasedIdentifier.objects.filter(kind=kind, digest__in=digests).exists()


class ErasedMatcher:
    """Recognises erased people's identifiers in stored files, by keyed hash only."""

    def __init__(self, organization_id: int):
        self.org_id = organization_id
        # Exact ids through the tombstones (keyed and the older unkeyed form):
        # another customer whose id differs only in letter case keeps their rows.
        self.tombstones = set(
            Customer.objects.filter(erased_at__isnull=False).values_list("external_id", flat=True)
        )
        self.digests: dict[str, set[str]] = {"email": set(), "phone": set()}
        for kind, digest in ErasedIdentifier.objects.filter(kind__in=self.digests).values_list(
            "kind", "digest"
        ):
            self.digests[kind].add(digest)
        self._memo: dict[tuple[str, str], bool] = {}

    @property
    def empty(self) -> bool:
        return not self.tombstones and not any(self.digests.values())

    def matches(self, kind: str, value: str) -> bool:
        value = (value or "").strip()
        if not value:
            return False
        key = (kind, value)
        found = self._memo.get(key)
        if found is None:
            if kind == "id":
                found = any(t in self.tombstones for t in erased_external_ids(self.org_id, value))
            else:
                found = any(
                    d in self.digests[kind] for d in identifier_digests(self.org_id, kind, value)
                )
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[key] = found
        return found

    def matches_any(self, value: str) -> bool:
        return any(self.matches(kind, value) for kind in ("id", "email", "phone"))


def erasure_scrub_run(
    *, job_id: int | None, identifiers: dict | None = None, progress=None, actor=None
) -> dict:
    """Remove every erased person's rows from the organisation's stored uploads and
    rejected-rows files. A file that cannot be read is left as it is, logged and
    listed in the result; the others are still cleaned. What was removed is written
    to the audit log, by `actor` (the job)."""
    org_id = require_organization_id()
    if identifiers:
        # A job queued before erasure stopped passing identifiers: keep their keyed
        # hashes instead, and drop the values from the job at once.
        erasure_remember(organization_id=org_id, identifiers=identifiers, erased_at=timezone.now())
        if job_id:
            job = Job.objects.filter(pk=job_id).first()
            if job is not None:
                params = {
                    k: v for k, v in job.params.items() if k not in ("identifiers", "customer_id")
                }
                Job.objects.filter(pk=job_id).update(params=params)
        identifiers = None
    matcher = ErasedMatcher(org_id)
    files = rows = 0
    unreadable: list[dict] = []
    withdrawn = organization_exports_expire()
    imports = [] if matcher.empty else list(Import.objects.all())
    for n, imp in enumerate(imports, start=1):
        if progress:
            progress(100 * n / max(1, len(imports)), f"Checked {n} of {len(imports)} imports")
        targets: list[tuple[str, Any, Callable[[Path], int]]] = []
        if imp.file and imp.kind != "products":
            targets.append(("upload", imp.file, partial(_scrub_upload, imp, matcher=matcher)))
        if imp.errors_file:
            targets.append(("rejected rows", imp.errors_file, lambda p: _scrub_errors(p, matcher)))
        for label, rel, scrub in targets:
            path = Path(settings.MEDIA_ROOT, rel)
            if not path.exists():
                continue
            try:
                removed = scrub(path)
            except Exception as exc:  # noqa: BLE001 - one damaged file must not stop the rest
                log.warning(
                    "erasure.file_unreadable import_id=%s file=%s error=%s",
                    imp.pk,
                    label,
                    exc.__class__.__name__,
                )
                unreadable.append(
                    {
                        "import": imp.pk,
                        "file": label,
                        "reason": getattr(exc, "message", None) or exc.__class__.__name__,
                    }
                )
                continue
            rows += removed
            files += 1 if removed else 0
    message = f"Removed {rows} rows from {files} stored files."
    if unreadable:
        names = ", ".join(f"import #{u['import']} ({u['file']})" for u in unreadable)
        message += (
            f" {len(unreadable)} stored files could not be read and were left as they are: "
            f"{names}. Delete those imports if they may name an erased person."
        )
    if rows or unreadable:
        from accounts.models import Organization

        audit_log(
            organization=Organization.objects.get(pk=org_id),
            action="erasure_cleaned",
            actor=actor or Actor.system("privacy clean-up"),
            target=f"job #{job_id}" if job_id else "",
            details={"rows_removed": rows, "files": files, "unreadable": len(unreadable)},
        )
    return {
        "message": message,
        "files": files,
        "rows": rows,
        "unreadable": unreadable,
        "exports_removed": withdrawn,
    }


def _scrub_errors(path: Path, matcher: ErasedMatcher) -> int:
    """Rejected-rows files: row, field, message, value, customer_id."""

    def keep(cells):
        customer = cells[4] if len(cells) > 4 else ""
        value = cells[3] if len(cells) > 3 else ""
        return not (matcher.matches("id", customer) or matcher.matches_any(value))

    return _rewrite_csv(path, keep)


def _scrub_upload(imp: Import, path: Path, matcher: ErasedMatcher) -> int:
    detected = imp.detected or {}
    info = SourceInfo(
        path=str(path),
        size=path.stat().st_size,
        gzip=bool(detected.get("gzip")),
        encoding=detected.get("encoding") or "utf-8",
        delimiter=detected.get("delimiter") or ",",
    )
    with RowStream(info) as stream:
        header = stream.header
    plan = build_plan(imp.kind, header, imp.mapping or None)
    columns = [
        (i, kind)
        for i, f in plan.fields
        for kind in ({"customer_id": "id", "email": "email", "phone": "phone"}.get(f),)
        if kind
    ]

    def keep(cells):
        return not any(i < len(cells) and matcher.matches(kind, cells[i]) for i, kind in columns)

    return _rewrite_csv(path, keep, info=info)


# --- the whole organisation ---------------------------------------------------------------


def _require_owner(*, organization, user) -> None:
    if user is None:  # nobody named: refused, as for a member who is not an owner
        raise PermissionDenied("Only an owner can do this.")
    Actor.of(user, organization=organization).require(Role.OWNER, "Only an owner can do this.")


def organization_export_start(*, organization, user, request=None):
    from ..tasks import organization_export

    _require_owner(organization=organization, user=user)
    audit_log(
        organization=organization,
        action="data_exported",
        actor=user,
        target=organization.name,
        details={"scope": "organization"},
        request=request,
    )
    return job_start(
        organization=organization,
        kind="org_export",
        task=organization_export,
        params={"user_id": user.pk},
        user=user,
        title="Export all data (zip of CSV files)",
    )


EXPORTS = {
    "customers.csv": (Customer, customer_fields.names(exported=True)),
    "products.csv": (
        Product,
        [
            "sku",
            "name",
            "category",
            "price",
            "url",
            "image_url",
            "in_stock",
            "merchandise",
            "hidden",
            "attributes",
            # how `merchandise` was decided (detected / set by a person): for a restore
            "merchandise_source",
        ],
    ),
    "events.csv": (
        Event,
        ["external_id", "customer__external_id", "type", "occurred_at", "properties"],
    ),
    "feedback.csv": (
        Feedback,
        [
            "external_id",
            "customer__external_id",
            "created_at",
            "source",
            "rating",
            "text",
            "properties",
        ],
    ),
    "consent_changes.csv": (
        ConsentChange,
        [
            "customer__external_id",
            "channel",
            "granted",
            "changed_at",
            "source",
            "via",
            "actor_kind",
            "actor_label",
            "recorded_at",
        ],
    ),
    "imports.csv": (
        Import,
        [
            "id",
            "kind",
            "status",
            "original_filename",
            "rows",
            "created",
            "updated",
            "unchanged",
            "rejected",
            "created_at",
        ],
    ),
}
HEADERS = {
    "external_id": "id",
    "customer__external_id": "customer_id",
    # consent history: as the API names them (customers/{id}/consent/)
    "actor_kind": "recorded_by_kind",
    "actor_label": "recorded_by",
}
ORDER_COLUMNS = [
    ("order_id", "order__external_id"),
    ("customer_id", "order__customer__external_id"),
    ("ordered_at", "order__ordered_at"),
    ("sku", "sku"),
    ("product_name", "product_name"),
    ("category", "category"),
    ("quantity", "quantity"),
    ("unit_price", "unit_price"),
    ("amount", "amount"),
    ("currency", "order__currency"),
    ("channel", "order__channel"),
    ("location", "order__location"),
    ("is_return", "order__is_return"),
    # what an order file may carry besides (the import's columns), so that a
    # restore (customers/services/backup.py) brings the same orders back
    ("status", "order__status"),
    ("line_id", "line_id"),
    ("discount_code", "discount_code"),
    ("discount_amount", "discount_amount"),
    # the order's, given once: on its first line only (an import adds them up)
    ("shipping_amount", "order__shipping_amount"),
    ("tax_amount", "order__tax_amount"),
]
ORDER_ONCE = {"shipping_amount", "tax_amount"}


def _cell(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        import json

        return csv_safe(json.dumps(value, ensure_ascii=False)) if value else ""
    if value is None:
        return ""
    return csv_safe(value)


def organization_export_run(*, job_id: int | None, user_id: int | None, progress=None) -> dict:
    job = Job.objects.get(pk=job_id) if job_id else None
    org_id = job.organization_id if job else None
    if org_id is None:
        raise ApplicationError("An export runs as a job.")
    folder = org_media_dir(org_id, "exports")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    rel = Path(f"org_{org_id}", "exports", f"segmenta-export-{stamp}-{job_id}.zip")
    path = Path(settings.MEDIA_ROOT, rel)
    counts = organization_archive_write(path, progress=progress)
    return {
        "message": "Your export is ready.",
        "url": reverse("customers:org_export_download", args=[job_id]),
        "file": str(rel),
        "files": counts,
    }


def _orders_rows(columns: list[tuple[str, str]]) -> Iterator[list]:
    """orders.csv's rows: one per order line, the order's own amounts on its first line."""
    once = [i for i, (h, _) in enumerate(columns) if h in ORDER_ONCE]
    qs = OrderLine.objects.order_by("order__ordered_at", "order_id", "position").values_list(
        "order_id", *[f for _, f in columns]
    )
    previous = None
    for order_id, *row in qs.iterator(chunk_size=2000):
        if order_id == previous:
            for i in once:
                row[i] = None
        previous = order_id
        yield row


def organization_archive_write(path: Path, *, progress=None) -> dict:
    """Write the current organisation's archive (the owner's export, which is also
    the backup `org_restore` reads: customers/services/backup.py) to `path`.
    Returns the rows written per file."""
    from . import backup

    counts = {}
    with (
        backup.one_snapshot(),
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        steps = [*EXPORTS.items(), ("orders.csv", None)]
        for n, (name, spec) in enumerate(steps, start=1):
            if progress:
                progress(90 * (n - 1) / len(steps), f"Writing {name}")
            with (
                archive.open(name, "w") as raw,
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as out,
            ):
                writer = csv.writer(out)
                rows: Any
                if spec is None:
                    writer.writerow([h for h, _ in ORDER_COLUMNS])
                    rows = _orders_rows(ORDER_COLUMNS)
                else:
                    model, fields = spec
                    writer.writerow([HEADERS.get(f, f) for f in fields])
                    qs = model.objects.all()
                    if model is Customer:
                        qs = qs.filter(erased_at__isnull=True)
                    rows = qs.order_by("pk").values_list(*fields).iterator(chunk_size=2000)
                count = 0
                for row in rows:
                    writer.writerow([_cell(v) for v in row])
                    count += 1
                counts[name] = count
        for exporter in registry.org_exporters():  # other capabilities' tables
            for name, headers, rows in exporter():
                with (
                    archive.open(name, "w") as raw,
                    io.TextIOWrapper(raw, encoding="utf-8", newline="") as out,
                ):
                    writer = csv.writer(out)
                    writer.writerow(headers)
                    count = 0
                    for row in rows:
                        writer.writerow([_cell(v) for v in row])
                        count += 1
                    counts[name] = count
        if progress:
            progress(90, "Writing segments and predictions")
        # what a restore needs beyond the CSV files: manifest.json, restore/*.jsonl
        counts.update(backup.archive_extras_write(archive, counts=counts))
    return counts


def organization_export_path(job: Job) -> Path | None:
    """The archive of a finished export, while it may still be downloaded."""
    state, path, _ = organization_export_state(job)
    return path if state == "ready" else None


def organization_export_expires_at(job: Job) -> dt.datetime | None:
    done = job.finished_at or job.created_at
    if not done:
        return None
    expires = done + dt.timedelta(days=settings.ORG_EXPORT_EXPIRE_DAYS)
    if (job.params or {}).get("_for_deletion"):
        # The export made for a scheduled deletion (accounts.suspension) stays until
        # the deletion, which removes it with the organisation's other files.
        from accounts.models import Organization

        deletion = (
            Organization.objects.filter(pk=job.organization_id)
            .values_list("deletion_scheduled_for", flat=True)
            .first()
        )
        if deletion is not None and deletion > expires:
            expires = deletion
    return expires


def organization_export_state(job: Job, *, now=None) -> tuple[str, Path | None, str]:
    """("ready", path, "") or (why not: "expired" / "withdrawn" / "missing", None,
    a sentence for the person asking)."""
    now = now or timezone.now()
    result = job.result or {}
    rel = result.get("file")
    if job.kind != "org_export" or job.status != "succeeded" or not rel:
        return "missing", None, "This export is not ready or no longer exists."
    withdrawn = (
        "This export was removed because a customer's data was erased after it was "
        "prepared. Prepare a new export."
    )
    expires_at = organization_export_expires_at(job)
    if result.get("removed") == "erasure":
        return "withdrawn", None, withdrawn
    if result.get("removed") == "expired" or (expires_at and expires_at <= now):
        days = settings.ORG_EXPORT_EXPIRE_DAYS
        local = timezone.localtime(expires_at) if expires_at else None
        when = f"{local.day} {local:%b %Y %H:%M}" if local else ""
        return (
            "expired",
            None,
            f"This export expired on {when}: exports are kept for {days} days. "
            "Prepare a new export.",
        )
    # Begun before an erasure, it may hold the person even if it finished later.
    begun = job.started_at or job.created_at
    if Customer.objects.filter(erased_at__gte=begun).exists():
        return "withdrawn", None, withdrawn
    path = Path(settings.MEDIA_ROOT, rel)
    expected = org_media_dir(job.organization_id, "exports")
    if path.parent.resolve() != expected.resolve() or not path.exists():
        return "missing", None, "This export is not ready or no longer exists."
    return "ready", path, ""


def _remove_export(job: Job, reason: str) -> int:
    """Delete one export's archive and say why on the job; 1 if a file went."""
    rel = (job.result or {}).get("file")
    removed = 0
    if rel:
        path = Path(settings.MEDIA_ROOT, rel)
        expected = org_media_dir(job.organization_id, "exports")
        if path.parent.resolve() == expected.resolve() and path.exists():
            path.unlink()
            removed = 1
    Job.objects.filter(pk=job.pk).update(result={**(job.result or {}), "removed": reason})
    return removed


def organization_exports_withdraw(*, erased_at) -> None:
    """After an erasure: every export of the organisation made so far is withdrawn,
    its archive deleted once the erasure is committed."""
    jobs = [
        j
        for j in Job.objects.filter(kind="org_export", status="succeeded")
        if (j.result or {}).get("file") and not (j.result or {}).get("removed")
    ]
    for job in jobs:
        Job.objects.filter(pk=job.pk).update(result={**job.result, "removed": "erasure"})

    def _delete():
        for job in jobs:
            path = Path(settings.MEDIA_ROOT, job.result["file"])
            expected = org_media_dir(job.organization_id, "exports")
            if path.parent.resolve() == expected.resolve():
                path.unlink(missing_ok=True)

    transaction.on_commit(_delete)


def organization_exports_expire(*, now=None) -> int:
    """Delete the current organisation's export archives that may no longer be
    downloaded (expired, or begun before an erasure), and stray archives older than
    the expiry. Returns how many files were deleted."""
    now = now or timezone.now()
    org_id = require_organization_id()
    deleted = 0
    for job in Job.objects.filter(kind="org_export", status="succeeded"):
        result = job.result or {}
        if not result.get("file"):
            continue
        state, _, _ = organization_export_state(job, now=now)
        if state in ("expired", "withdrawn"):
            deleted += _remove_export(job, "expired" if state == "expired" else "erasure")
    # Archives no job points at any more (a job row deleted, a crash mid-write).
    folder = org_media_dir(org_id, "exports")
    cutoff = (now - dt.timedelta(days=settings.ORG_EXPORT_EXPIRE_DAYS)).timestamp()
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted


def organization_exports_expire_all() -> int:
    """The periodic task's work: every organisation, each in its own scope."""
    from accounts.models import Organization

    deleted = 0
    for org_id in Organization.objects.values_list("pk", flat=True):
        with tenant_context(org_id):
            try:
                deleted += organization_exports_expire()
            except Exception:
                log.exception("exports.expire_failed org_id=%s", org_id)
    return deleted


# Delete order: children before parents; each statement names the organisation.
_DELETE_ORDER = [
    # the rows pipeline runs write in bulk, which have no database-level foreign keys
    # (their models say why): deleted by statement, not collected row by row
    "segmentation_segmentmembership",
    "segmentation_customerprediction",
    "recommendations_customerrecommendation",
    "customers_customerchange",
    "customers_orderline",
    "customers_order",
    "customers_event",
    "customers_consentchange",
    "customers_feedback",
]


@transaction.atomic
def organization_delete(*, organization, user, confirm_name: str, request=None) -> None:
    """An owner removes the organisation and everything of it, after typing its name."""
    _require_owner(organization=organization, user=user)
    if (confirm_name or "").strip() != organization.name:
        raise ApplicationError(
            "Type the organisation's name exactly to confirm.",
            {"fields": {"confirm_name": "Does not match."}},
        )
    organization_remove(organization=organization, actor=user, request=request)
    next_membership = (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("created_at")
        .first()
    )
    user.current_organization = next_membership.organization if next_membership else None
    user.save(update_fields=["current_organization"])


@transaction.atomic
def organization_remove(*, organization, actor, details: dict | None = None, request=None) -> None:
    """Delete the organisation, all its rows and, once committed, all its files. The
    one path of both deletions: an owner's (`organization_delete`) and the one
    platform staff scheduled (accounts.suspension.organizations_delete_due, whose
    `details` say who scheduled it)."""
    # Written first, so the deletion is on record while it runs (it goes with the
    # organisation; the application log keeps the line below).
    audit_log(
        organization=organization,
        action="org_deleted",
        actor=actor,
        target=organization.name,
        details=details,
        request=request,
    )
    who = Actor.of(actor, organization=organization, request=request)
    log.warning(
        "organization.deleted org_id=%s slug=%s by_user_id=%s by=%s details=%s",
        organization.pk,
        organization.slug,
        who.id if who.is_user else None,
        who.label,
        details or {},
    )
    org_id = organization.pk
    with tenant_context(organization), connection.cursor() as cursor:
        # The big tables go with one statement each instead of row by row.
        for table in _DELETE_ORDER:
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [org_id])  # noqa: S608
        organization.delete()
    transaction.on_commit(lambda: org_media_remove(org_id))
