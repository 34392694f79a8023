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
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.services import audit_log
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError, PermissionDenied
from core.jobs import job_start
from core.models import Job

from .. import registry
from ..models import (
    ConsentChange,
    Customer,
    Event,
    Feedback,
    Import,
    Order,
    OrderLine,
    Product,
)
from .exports import csv_safe
from .identity import erased_external_id
from .importing import org_media_dir, org_media_remove
from .imports.columns import build_plan
from .imports.reader import RowStream, SourceInfo

log = logging.getLogger("segmenta.privacy")

PERSONAL_BLANK = {
    "email": "",
    "phone": "",
    "first_name": "",
    "last_name": "",
    "birth_date": None,
    "gender": "",
    "city": "",
    "region": "",
    "country": "",
    "postal_code": "",
    "latitude": None,
    "longitude": None,
    "signup_at": None,
    "accepts_email": False,
    "accepts_sms": False,
    "email_consent_at": None,
    "email_consent_source": "",
    "sms_consent_at": None,
    "sms_consent_source": "",
    "attributes": {},
    "first_order_at": None,
    "last_order_at": None,
    "orders_count": 0,
    "total_spent": 0,
}


def _iso(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# --- one person ------------------------------------------------------------------------


def customer_export_data(*, customer: Customer) -> dict:
    """Everything held on one person, as JSON-ready data."""
    from ..selectors import customer_segment_info

    profile = {
        f: _iso(getattr(customer, f))
        for f in (
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "gender",
            "city",
            "region",
            "country",
            "postal_code",
            "latitude",
            "longitude",
            "signup_at",
            "attributes",
            "created_at",
            "updated_at",
        )
    }
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
                }
                for c in customer.consent_changes.all()
            ],
        },
        "statistics": {
            "orders_count": customer.orders_count,
            "total_spent": str(customer.total_spent),
            "first_order_at": _iso(customer.first_order_at),
            "last_order_at": _iso(customer.last_order_at),
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
    }


def ln_sorted(order: Order) -> list[OrderLine]:
    return sorted(order.lines.all(), key=lambda ln: ln.position)


def customer_export_record(*, customer: Customer, actor=None, request=None) -> dict:
    data = customer_export_data(customer=customer)
    audit_log(
        organization=customer.organization,
        action="data_exported",
        actor=actor,
        actor_label=_label(actor, request),
        target=f"customer #{customer.pk}",
        details={"scope": "customer"},
        request=request,
    )
    return data


def _label(actor, request=None) -> str:
    if actor is not None:
        email = getattr(actor, "email", "")
        return email if isinstance(email, str) else ""
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        return f"API key {api_key.name} ({api_key.prefix})"
    return "command line"


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


@transaction.atomic
def customer_erase(
    *, customer: Customer, actor=None, request=None, sync_files: bool = False
) -> Customer:
    """Erase a person: personal fields removed, orders kept without identity, the id
    remembered only as a hash so later imports naming it are refused."""
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
    ConsentChange.objects.filter(customer=customer).delete()
    for handler in registry.erasure_handlers():
        handler(organization=organization, customer_ids=[customer.pk])
    Customer.objects.filter(pk=customer.pk).update(
        external_id=erased_external_id(organization.pk, customer.external_id),
        erased_at=now,
        updated_at=now,
        **PERSONAL_BLANK,
    )
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
    audit_log(
        organization=organization,
        action="data_erased",
        actor=actor,
        actor_label=_label(actor, request),
        target=f"customer #{customer.pk}",
        details={"orders_kept_without_identity": orders_kept},
        request=request,
    )
    from ..tasks import erasure_scrub

    # Stored upload files are rewritten in the background; the identifiers travel in
    # the job's parameters only until it has run.
    job_start(
        organization=organization,
        kind="erasure",
        task=erasure_scrub,
        params={"customer_id": customer.pk, "identifiers": identifiers},
        user=actor,
        title="Remove an erased person from stored files",
        sync=sync_files,
    )
    customer.refresh_from_db()
    return customer


def _rewrite_csv(path: Path, keep, *, info: SourceInfo | None = None) -> int:
    """Rewrite a stored CSV (or .csv.gz) without the rows `keep(cells)` refuses."""
    removed = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
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
        src.close()
        if removed:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return removed


def erasure_scrub_run(
    *, job_id: int | None, customer_id: int, identifiers: dict | None = None, progress=None
) -> dict:
    """Remove the erased person's rows from every stored upload and errors file."""
    identifiers = identifiers or {}
    ext = (identifiers.get("external_id") or "").strip()
    email = (identifiers.get("email") or "").strip().lower()
    files = rows = 0
    imports = list(Import.objects.all())
    for n, imp in enumerate(imports, start=1):
        if progress:
            progress(100 * n / max(1, len(imports)), f"Checked {n} of {len(imports)} imports")
        if imp.file and imp.kind != "products":
            path = Path(settings.MEDIA_ROOT, imp.file)
            if path.exists():
                removed = _scrub_upload(imp, path, ext, email)
                rows += removed
                files += 1 if removed else 0
        if imp.errors_file:
            path = Path(settings.MEDIA_ROOT, imp.errors_file)
            if path.exists():
                needles = _needles(identifiers)

                def keep(cells, needles=needles):
                    customer = cells[4].strip().lower() if len(cells) > 4 else ""
                    value = cells[3].strip().lower() if len(cells) > 3 else ""
                    return customer not in needles and not (email and email in value)

                removed = _rewrite_csv(path, keep)
                rows += removed
                files += 1 if removed else 0
    if job_id:
        # The identifiers have done their work: keep no copy of them.
        Job.objects.filter(pk=job_id).update(
            params={"customer_id": customer_id, "_task": "customers.tasks.erasure_scrub"}
        )
    return {
        "message": f"Removed {rows} rows from {files} stored files.",
        "files": files,
        "rows": rows,
    }


def _scrub_upload(imp: Import, path: Path, ext: str, email: str) -> int:
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
    id_cols = [i for i, f in plan.fields if f == "customer_id"]
    email_cols = [i for i, f in plan.fields if f == "email"]

    def keep(cells):
        for i in id_cols:
            if ext and i < len(cells) and cells[i].strip() == ext:
                return False
        for i in email_cols:
            if email and i < len(cells) and cells[i].strip().lower() == email:
                return False
        return True

    return _rewrite_csv(path, keep, info=info)


# --- the whole organisation ---------------------------------------------------------------


def _require_owner(*, organization, user) -> None:
    membership = Membership.objects.filter(organization=organization, user=user).first()
    if membership is None or membership.role != Role.OWNER:
        raise PermissionDenied("Only an owner can do this.")


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
    "customers.csv": (
        Customer,
        [
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "gender",
            "city",
            "region",
            "country",
            "postal_code",
            "latitude",
            "longitude",
            "signup_at",
            "accepts_email",
            "accepts_sms",
            "email_consent_at",
            "email_consent_source",
            "sms_consent_at",
            "sms_consent_source",
            "attributes",
            "orders_count",
            "total_spent",
            "first_order_at",
            "last_order_at",
            "created_at",
        ],
    ),
    "products.csv": (
        Product,
        ["sku", "name", "category", "price", "url", "image_url", "in_stock", "attributes"],
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
        ["customer__external_id", "channel", "granted", "changed_at", "source"],
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
HEADERS = {"external_id": "id", "customer__external_id": "customer_id"}
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
]


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
    counts = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        steps = [*EXPORTS.items(), ("orders.csv", None)]
        for n, (name, spec) in enumerate(steps, start=1):
            if progress:
                progress(100 * (n - 1) / len(steps), f"Writing {name}")
            with (
                archive.open(name, "w") as raw,
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as out,
            ):
                writer = csv.writer(out)
                if spec is None:
                    writer.writerow([h for h, _ in ORDER_COLUMNS])
                    qs = OrderLine.objects.order_by(
                        "order__ordered_at", "order_id", "position"
                    ).values_list(*[f for _, f in ORDER_COLUMNS])
                else:
                    model, fields = spec
                    writer.writerow([HEADERS.get(f, f) for f in fields])
                    qs = model.objects.all()
                    if model is Customer:
                        qs = qs.filter(erased_at__isnull=True)
                    qs = qs.order_by("pk").values_list(*fields)
                count = 0
                for row in qs.iterator(chunk_size=2000):
                    writer.writerow([_cell(v) for v in row])
                    count += 1
                counts[name] = count
    return {
        "message": "Your export is ready.",
        "url": reverse("customers:org_export_download", args=[job_id]),
        "file": str(rel),
        "files": counts,
    }


def organization_export_path(job: Job) -> Path | None:
    rel = (job.result or {}).get("file")
    if job.kind != "org_export" or not rel:
        return None
    path = Path(settings.MEDIA_ROOT, rel)
    expected = org_media_dir(job.organization_id, "exports")
    if path.parent.resolve() != expected.resolve() or not path.exists():
        return None
    return path


# Delete order: children before parents; each statement names the organisation.
_DELETE_ORDER = [
    "customers_orderline",
    "customers_order",
    "customers_event",
    "customers_consentchange",
    "customers_feedback",
]


@transaction.atomic
def organization_delete(*, organization, user, confirm_name: str, request=None) -> None:
    """Remove the organisation and everything of it, after its name is typed."""
    _require_owner(organization=organization, user=user)
    if (confirm_name or "").strip() != organization.name:
        raise ApplicationError(
            "Type the organisation's name exactly to confirm.",
            {"fields": {"confirm_name": "Does not match."}},
        )
    # Written first, so the deletion is on record while it runs (it goes with the
    # organisation; the application log keeps the line below).
    audit_log(
        organization=organization,
        action="org_deleted",
        actor=user,
        target=organization.name,
        request=request,
    )
    log.warning(
        "organization.deleted org_id=%s slug=%s by_user_id=%s",
        organization.pk,
        organization.slug,
        user.pk,
    )
    org_id = organization.pk
    with tenant_context(organization), connection.cursor() as cursor:
        # The big tables go with one statement each instead of row by row.
        for table in _DELETE_ORDER:
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [org_id])  # noqa: S608
        organization.delete()
    transaction.on_commit(lambda: org_media_remove(org_id))
    next_membership = (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("created_at")
        .first()
    )
    user.current_organization = next_membership.organization if next_membership else None
    user.save(update_fields=["current_organization"])
