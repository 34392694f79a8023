"""Backup and restore of one organisation (docs/backups.md).

The archive is the owner's export (`privacy.organization_archive_write`): the CSV
files in the import formats, the other capabilities' files, and what a restore
needs beyond them, written here:

- `manifest.json`: the format and its version, the organisation's settings (name,
  currency, time zone, revenue basis, sensitive attributes, limits) and the rows
  per file, so a restore can check it brought everything back;
- `restore/orders.jsonl`: the orders' own properties (not a column of orders.csv);
- `restore/<app>.<model>.jsonl`: the segmentation and prediction settings, the live
  segmentation run with its segments, personas (with people's edits) and
  memberships, and the live prediction run with its customers' predictions and
  products' forecasts. Rows name customers, products and segments by the
  business's ids (external id, sku, segment key), never by database ids.

`organization_restore` creates a new organisation from an archive: the CSV files go
through the import engine (keyed by external ids, as any import), then every
exported field is set to the archived value exactly (what an import reads its own
way: a cell the spreadsheet guard changed, the customer's order figures, consent
sources, created dates), the consent history is written as it was, and the
segments and predictions are written back as they were stored, so the same
customers are in the same segments with the same predictions. It writes only
into the organisation it creates.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from core.exceptions import ApplicationError

log = logging.getLogger("segmenta.backup")

FORMAT = "segmenta-organization-archive"
VERSION = 1
MANIFEST = "manifest.json"
ORDERS_EXTRA = "restore/orders.jsonl"
CHUNK = 5000

# Imported in this order (products before the orders that name them; customers
# before the orders, events and feedback that name them).
IMPORTS = [
    ("products.csv", "products"),
    ("customers.csv", "customers"),
    ("orders.csv", "orders"),
    ("events.csv", "events"),
    ("feedback.csv", "feedback"),
]

Progress = Callable[[float, str], None]


def _restored_models() -> list[tuple[Any, str]]:
    """(model, which rows) in restore order: "all" rows, the "live" run only, or the
    rows "of the live run"."""
    from predictions.models import (
        CustomerPrediction,
        PredictionRun,
        PredictionSettings,
        ProductForecast,
    )
    from segmentation.models import (
        Persona,
        Segment,
        SegmentationRun,
        SegmentationSettings,
        SegmentMembership,
    )

    return [
        (SegmentationSettings, "all"),
        (PredictionSettings, "all"),
        (SegmentationRun, "live"),
        (Segment, "all"),
        (Persona, "all"),
        (SegmentMembership, "of live"),
        (PredictionRun, "live"),
        (CustomerPrediction, "of live"),
        (ProductForecast, "of live"),
    ]


def _file_name(model: Any) -> str:
    return f"restore/{model._meta.label_lower}.jsonl"


def _keys() -> dict[Any, str]:
    """Tenant rows other rows point at, and the field that names them in an archive."""
    from customers.models import Customer, Product
    from segmentation.models import Segment

    return {Customer: "external_id", Product: "sku", Segment: "key"}


def _runs() -> tuple[Any, ...]:
    from predictions.models import PredictionRun
    from segmentation.models import SegmentationRun

    return (SegmentationRun, PredictionRun)


def _fields(model: Any) -> list[Any]:
    """The fields an archive carries: all but the row's id and organisation, and
    links to rows it does not carry (jobs, users): a restore leaves those empty."""
    keys, runs = _keys(), _runs()
    kept = []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.name == "organization" or f.generated:
            continue  # (a generated column is the database's: derived, never written)
        if f.is_relation and f.related_model not in keys and f.related_model not in runs:
            continue
        kept.append(f)
    return kept


# --- writing ----------------------------------------------------------------------------


def _jsonl(archive: zipfile.ZipFile, name: str, rows: Iterable[dict]) -> int:
    count = 0
    with (
        archive.open(name, "w") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as out,
    ):
        for row in rows:
            out.write(json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n")
            count += 1
    return count


def _model_rows(model: Any, which: str) -> Iterator[dict]:
    keys, runs = _keys(), _runs()
    fields = _fields(model)
    qs = model.objects.all()
    if which == "live":
        qs = qs.filter(is_live=True)
    elif which == "of live":
        qs = qs.filter(run__is_live=True)
    # names of linked rows, read once per model (ids to external ids / skus / keys)
    names: dict[str, dict[int, Any]] = {}
    for f in fields:
        if f.is_relation and f.related_model in keys:
            target = f.related_model
            names[f.name] = dict(target.objects.values_list("pk", keys[target]).iterator())
    values = ["pk", *[f.attname for f in fields]]
    for row in qs.order_by("pk").values_list(*values).iterator(chunk_size=2000):
        out: dict[str, Any] = {"_id": row[0]}
        for f, value in zip(fields, row[1:], strict=True):
            if f.is_relation and f.related_model in runs:
                out[f.name] = value  # the run's id in the archive (it travels with it)
            elif f.is_relation:
                out[f.name] = None if value is None else names[f.name].get(value)
            else:
                out[f.name] = value
        yield out


def archive_extras_write(archive: zipfile.ZipFile, *, counts: dict) -> dict:
    """Write what a restore needs beyond the CSV files into an open archive (in the
    current organisation's scope); returns the rows per file written."""
    from accounts.models import Organization, OrganizationLimits
    from accounts.tenancy import require_organization_id
    from customers.models import Order

    org = Organization.objects.get(pk=require_organization_id())
    written: dict[str, int] = {}
    orders = (
        {"order_id": ext, "properties": props}
        for ext, props in Order.objects.exclude(properties={})
        .order_by("pk")
        .values_list("external_id", "properties")
        .iterator(chunk_size=2000)
    )
    written[ORDERS_EXTRA] = _jsonl(archive, ORDERS_EXTRA, orders)
    for model, which in _restored_models():
        name = _file_name(model)
        written[name] = _jsonl(archive, name, _model_rows(model, which))
    limits = OrganizationLimits.objects.filter(organization=org).first()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "organization": {
            "name": org.name,
            "slug": org.slug,
            "currency": org.currency,
            "time_zone": org.time_zone,
            "revenue_basis": org.revenue_basis,
            "sensitive_attributes": org.sensitive_attributes,
            "require_two_factor": org.require_two_factor,
        },
        "limits": {
            f.name: getattr(limits, f.name)
            for f in OrganizationLimits._meta.concrete_fields
            if limits is not None
            and f.name not in ("organization", "updated_at")
            and getattr(limits, f.name) is not None
        },
        # a text cell a spreadsheet would run as a formula starts with this
        "formula_guard": "'",
        "files": {**counts, **written},
    }
    with archive.open(MANIFEST, "w") as raw:
        raw.write(json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return written


@contextlib.contextmanager
def one_snapshot() -> Iterator[None]:
    """One transaction whose every query sees the same moment (REPEATABLE READ on
    PostgreSQL; SQLite's transactions already do), so an archive's files agree.

    It also makes the organisation's setting hold for the whole transaction
    before the first read: the scope is set before each statement
    (accounts/rls.py), but a streamed read (`.iterator()`, a server-side cursor)
    only declares the statement it is given, so on its own it would see no rows."""
    postgres = connection.vendor == "postgresql" and not connection.in_atomic_block
    if postgres:
        # The level must be chosen before the transaction's first query, and every
        # query is preceded by the scope's settings: set it for the session, and
        # put it back afterwards (connections are reused).
        with connection.cursor() as cursor:
            cursor.execute(
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ"
            )
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")  # the scope's settings, for the transaction
            yield
    finally:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
                )


def organization_backup(
    *, organization, path: str | Path, progress: Progress | None = None
) -> dict:
    """Write `organization`'s archive to `path` (the operator's `org_backup`)."""
    from accounts.tenancy import tenant_context

    from .privacy import organization_archive_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tenant_context(organization):
        counts = organization_archive_write(tmp, progress=progress)
    tmp.replace(path)
    return {"file": str(path), "bytes": path.stat().st_size, "files": counts}


# --- reading ----------------------------------------------------------------------------


def _unguard(text: str) -> str:
    """Undo the export's spreadsheet guard (customers.services.exports.csv_safe)."""
    from .exports import FORMULA_START

    if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_START):
        return text[1:]
    return text


def _field(model: Any, name: str) -> Any:
    return model._meta.get_field(name)


def _from_cell(field: Any, text: str) -> Any:
    """An exported cell (privacy._cell) back to the field's value."""
    text = _unguard(text)
    if isinstance(field, models.JSONField):
        return json.loads(text) if text else field.get_default()
    if text == "":
        if field.null:
            return None
        if isinstance(field, models.CharField | models.TextField):
            return ""
        return field.get_default()
    return field.to_python(text)


def _from_json(field: Any, value: Any) -> Any:
    if value is None or isinstance(field, models.JSONField):
        return value
    return field.to_python(value)


def _csv_rows(archive: zipfile.ZipFile, name: str) -> Iterator[list[str]]:
    with (
        archive.open(name) as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
    ):
        reader = csv.reader(text)
        next(reader, None)
        yield from reader


def _chunks(rows: Iterable, size: int = CHUNK) -> Iterator[list]:
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _jsonl_rows(archive: zipfile.ZipFile, name: str) -> Iterator[dict]:
    if name not in archive.namelist():
        return
    with archive.open(name) as raw, io.TextIOWrapper(raw, encoding="utf-8") as text:
        for line in text:
            if line.strip():
                yield json.loads(line)


def archive_manifest(archive: zipfile.ZipFile) -> dict:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise ApplicationError(
            "This archive has no manifest.json: it was made before exports could be "
            "restored. Make a new export (or org_backup) and restore that."
        ) from None
    if manifest.get("format") != FORMAT:
        raise ApplicationError("This file is not a Segmenta organisation archive.")
    if int(manifest.get("version") or 0) > VERSION:
        raise ApplicationError(
            f"This archive is format version {manifest['version']}; this installation "
            f"reads up to version {VERSION}. Restore it with a newer Segmenta."
        )
    return manifest


def _owner(email: str):
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    email = (email or "").strip().lower()
    if not email or "@" not in email:
        raise ApplicationError("--owner takes the new organisation's owner's email address.")
    user = user_model.objects.filter(email=email).first()
    if user is None:
        user = user_model.objects.create_user(email=email, password=None, email_verified=True)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _create_organization(manifest: dict, *, owner_email: str, name: str | None, slug: str | None):
    from accounts.models import Organization, OrganizationLimits
    from accounts.services import organization_create

    settings = manifest.get("organization") or {}
    with transaction.atomic():
        org = organization_create(
            name=name or settings.get("name") or "Restored organisation",
            owner=_owner(owner_email),
            time_zone=settings.get("time_zone") or "UTC",
            currency=settings.get("currency") or "USD",
            slug=slug,
        )
        extra = {
            k: settings[k]
            for k in ("revenue_basis", "sensitive_attributes", "require_two_factor")
            if k in settings
        }
        if extra:
            Organization.objects.filter(pk=org.pk).update(**extra)
        if manifest.get("limits"):
            OrganizationLimits.objects.update_or_create(
                organization=org, defaults=manifest["limits"]
            )
    org.refresh_from_db()
    return org


def _import_mapping(kind: str, header: list[str]) -> dict[str, str]:
    """The archive's columns the import reads as its fields; every other column
    (order figures, consent sources, JSON cells) is left to the exact pass."""
    from .imports import FIELDS, auto_map

    suggested, _ = auto_map(kind, header)
    return {h: ("" if target not in FIELDS[kind] else target) for h, target in suggested.items()}


def _run_imports(org, archive: zipfile.ZipFile, folder: Path, report: Progress) -> dict:
    from .importing import import_from_path

    results: dict[str, dict] = {}
    unkeyed: list[list[str]] = []
    for n, (name, kind) in enumerate(IMPORTS):
        if name not in archive.namelist():
            continue
        report(5 + 50 * n / len(IMPORTS), f"Importing {name}")
        path = folder / name
        if kind == "events":
            # events the source stored without an id (Segmenta's own, such as sends)
            # keep none: written as archived, not given a content id by the import
            unkeyed = _split_unkeyed_events(archive, name, path)
        else:
            with archive.open(name) as src, open(path, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if not header:
            continue
        with open(path, newline="", encoding="utf-8") as f:
            if sum(1 for _ in zip(range(2), csv.reader(f), strict=False)) < 2:
                path.unlink()
                continue  # a header only: nothing to import
        imp, _ = import_from_path(
            organization=org,
            path=str(path),
            kind=kind,
            mapping=_import_mapping(kind, header),
            options={"allow_deleted": True, "encoding": "utf-8", "delimiter": ","},
            run_pipeline=False,
        )
        path.unlink()
        if imp.status != "succeeded" or imp.rejected:
            first = (imp.errors or [{}])[0]
            raise ApplicationError(
                f"The restore stopped: {name} was not imported whole "
                f"({imp.rejected} rows refused; first: {first.get('message', imp.message)}). "
                f"Delete the organisation '{org.slug}' before trying again."
            )
        results[name] = {"rows": imp.rows, "created": imp.created}
    if unkeyed:
        results["events.csv (without ids)"] = {"rows": _events_write(unkeyed)}
    return results


def _split_unkeyed_events(archive: zipfile.ZipFile, name: str, path: Path) -> list[list[str]]:
    """Copy `name` to `path` without its rows that have no id; returns those."""
    unkeyed = []
    with (
        archive.open(name) as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
        open(path, "w", newline="", encoding="utf-8") as out,
    ):
        reader, writer = csv.reader(text), csv.writer(out)
        writer.writerow(next(reader, []))
        for row in reader:
            if row and row[0] == "":
                unkeyed.append(row)
            else:
                writer.writerow(row)
    return unkeyed


def _events_write(rows: list[list[str]]) -> int:
    from customers.models import Customer, Event

    from .privacy import EXPORTS

    _, fields = EXPORTS["events.csv"]
    cust = fields.index("customer__external_id")
    columns = [(i, _field(Event, f)) for i, f in enumerate(fields) if "__" not in f]
    org_id, written = _org_id(), 0
    for chunk in _chunks(rows):
        ids = dict(
            Customer.objects.filter(external_id__in={_unguard(r[cust]) for r in chunk}).values_list(
                "external_id", "pk"
            )
        )
        objs = [
            Event(
                organization_id=org_id,
                customer_id=ids[_unguard(r[cust])],
                **{f.attname: _from_cell(f, r[i]) for i, f in columns},
            )
            for r in chunk
        ]
        Event.objects.bulk_create(objs, batch_size=1000)
        written += len(objs)
    return written


def _exact_pass(
    model: Any,
    key: str,
    fields: list[str],
    rows: Iterable[list[str]],
    *,
    key_column: int = 0,
    skip: Iterable[str] = (),
) -> int:
    """Set every exported field of the rows named in `rows` (an archive's CSV rows)
    to the archived value; returns how many rows needed it."""
    skipped = set(skip)
    columns = [
        (i, _field(model, f))
        for i, f in enumerate(fields)
        if "__" not in f and f != key and f not in skipped
    ]
    key_field = _field(model, key)
    corrected = 0
    for chunk in _chunks(rows):
        wanted = {
            _from_cell(key_field, r[key_column]): {f.name: _from_cell(f, r[i]) for i, f in columns}
            for r in chunk
        }
        stored = model.objects.filter(**{f"{key}__in": list(wanted)})
        changed, names = [], set()
        for obj in stored:
            for fname, value in wanted[getattr(obj, key)].items():
                if getattr(obj, fname) != value:
                    setattr(obj, fname, value)
                    names.add(fname)
                    changed.append(obj)
        changed = list({id(o): o for o in changed}.values())
        if changed:
            model.objects.bulk_update(changed, sorted(names), batch_size=1000)
            corrected += len(changed)
    return corrected


def _exact_lines(archive: zipfile.ZipFile) -> int:
    """Order lines as archived, matched by order and place within it."""
    from customers.models import Order, OrderLine

    from .privacy import ORDER_COLUMNS

    header = [h for h, _ in ORDER_COLUMNS]
    line_fields = [
        (header.index(h), _field(OrderLine, f)) for h, f in ORDER_COLUMNS if "__" not in f
    ]
    order_fields = [
        (header.index(h), _field(Order, f.split("__", 1)[1]))
        for h, f in ORDER_COLUMNS
        if f.startswith("order__") and f.count("__") == 1 and f != "order__external_id"
    ]
    oid = header.index("order_id")
    corrected = 0
    # the file lists each order's lines together, in their order
    by_order: dict[str, list[list[str]]] = {}
    pending: list[str] = []

    def flush(keys: list[str]) -> int:
        fixed = 0
        orders = {o.external_id: o for o in Order.objects.filter(external_id__in=keys)}
        lines: dict[int, list] = {}
        for line in OrderLine.objects.filter(order__in=orders.values()).order_by(
            "order_id", "position", "pk"
        ):
            lines.setdefault(line.order_id, []).append(line)
        changed_orders, order_names, changed_lines, line_names = [], set(), [], set()
        for ext in keys:
            rows, order = by_order.pop(ext), orders.get(ext)
            if order is None:
                raise ApplicationError(f"The restore lost order {ext}.")
            first = rows[0]
            dirty = False
            for i, f in order_fields:
                # the order's own amounts are on its first line (privacy.ORDER_ONCE)
                value = _from_cell(f, first[i])
                if getattr(order, f.attname) != value:
                    setattr(order, f.attname, value)
                    order_names.add(f.attname)
                    dirty = True
            if dirty:
                changed_orders.append(order)
            stored = lines.get(order.pk, [])
            if len(stored) != len(rows):
                raise ApplicationError(
                    f"The restore brought order {ext} back with {len(stored)} lines, "
                    f"not {len(rows)}."
                )
            for position, (line, row) in enumerate(zip(stored, rows, strict=True)):
                dirty = False
                for i, f in line_fields:
                    value = _from_cell(f, row[i])
                    if getattr(line, f.attname) != value:
                        setattr(line, f.attname, value)
                        line_names.add(f.attname)
                        dirty = True
                if line.position != position:
                    line.position = position
                    line_names.add("position")
                    dirty = True
                if dirty:
                    changed_lines.append(line)
        if changed_orders:
            Order.objects.bulk_update(changed_orders, sorted(order_names), batch_size=1000)
        if changed_lines:
            OrderLine.objects.bulk_update(changed_lines, sorted(line_names), batch_size=1000)
        fixed += len(changed_orders) + len(changed_lines)
        return fixed

    for row in _csv_rows(archive, "orders.csv"):
        ext = _unguard(row[oid])
        if ext not in by_order:
            if len(pending) >= 2000:
                corrected += flush(pending)
                pending = []
            pending.append(ext)
            by_order[ext] = []
        by_order[ext].append(row)
    if pending:
        corrected += flush(pending)
    properties = {}
    for item in _jsonl_rows(archive, ORDERS_EXTRA):
        properties[item["order_id"]] = item["properties"]
    for chunk in _chunks(list(properties.items())):
        changed = []
        for order in Order.objects.filter(external_id__in=[k for k, _ in chunk]):
            if order.properties != properties[order.external_id]:
                order.properties = properties[order.external_id]
                changed.append(order)
        Order.objects.bulk_update(changed, ["properties"], batch_size=1000)
        corrected += len(changed)
    # orders the import kept as returns or purchases from the lines: as archived
    return corrected


def _extra_products(archive: zipfile.ZipFile) -> int:
    """Products the orders import made for skus of lines the archive holds no
    product for: removed (the lines keep their sku and name, as in the source)."""
    from customers.models import Product

    archived = {_unguard(r[0]) for r in _csv_rows(archive, "products.csv")}
    extra = [pk for pk, sku in Product.objects.values_list("pk", "sku") if sku not in archived]
    for chunk in _chunks(extra):
        Product.objects.filter(pk__in=chunk).delete()
    return len(extra)


def _consent_history(archive: zipfile.ZipFile) -> int:
    """The consent history as archived (the import wrote its own entries: replaced)."""
    from customers.models import ConsentChange, Customer

    from .consent import consent_history_restore
    from .privacy import EXPORTS

    _, fields = EXPORTS["consent_changes.csv"]
    ConsentChange.objects.all().delete()
    columns = [(i, _field(ConsentChange, f)) for i, f in enumerate(fields) if "__" not in f]
    cust = fields.index("customer__external_id")
    written = 0
    for chunk in _chunks(_csv_rows(archive, "consent_changes.csv")):
        ids = dict(
            Customer.objects.filter(external_id__in={_unguard(r[cust]) for r in chunk}).values_list(
                "external_id", "pk"
            )
        )
        written += consent_history_restore(
            entries=[
                {
                    "customer_id": ids[_unguard(r[cust])],
                    **{f.name: _from_cell(f, r[i]) for i, f in columns},
                }
                for r in chunk
            ]
        )
    return written


def _org_id() -> int:
    from accounts.tenancy import require_organization_id

    return require_organization_id()


def _remap_segment_ids(value: Any, seg: dict[int, int], path: str) -> Any:
    """Segment ids a run's summary and projection name, as the new ones."""

    def new(old):
        try:
            return seg.get(int(old), old)
        except (TypeError, ValueError):
            return old

    if not isinstance(value, dict):
        return value
    value = json.loads(json.dumps(value))
    if path == "summary":
        segments = value.get("segments")
        if isinstance(segments, dict):
            fixed = {}
            for k, v in segments.items():
                if isinstance(v, dict) and v.get("parent_id") is not None:
                    v["parent_id"] = new(v["parent_id"])
                fixed[str(new(k))] = v
            value["segments"] = fixed
        matched = value.get("matched")
        if isinstance(matched, dict):
            value["matched"] = {k: new(v) for k, v in matched.items()}
    elif path == "projection":
        for item in value.get("segments") or []:
            if isinstance(item, dict) and "id" in item:
                item["id"] = new(item["id"])
        if isinstance(value.get("segment_ids"), list):
            value["segment_ids"] = [new(v) for v in value["segment_ids"]]
    return value


def _restore_models(archive: zipfile.ZipFile, report: Progress) -> dict:
    """Settings, the live runs, segments, personas, memberships and predictions, as
    archived. Rows naming a customer or product the archive does not hold (an
    erased person) are left out."""
    from segmentation.models import Segment, SegmentationRun

    keys, runs = _keys(), _runs()
    org_id = _org_id()
    run_ids: dict[tuple[Any, int], int] = {}
    segment_ids: dict[int, int] = {}
    parents: list[tuple[int, str]] = []
    written: dict[str, int] = {}
    lookups: dict[Any, dict[Any, int]] = {}

    def lookup(model):
        if model not in lookups:
            lookups[model] = dict(model.objects.values_list(keys[model], "pk").iterator())
        return lookups[model]

    models_ = _restored_models()
    for n, (model, _) in enumerate(models_):
        name = _file_name(model)
        report(70 + 28 * n / len(models_), f"Restoring {model._meta.verbose_name_plural}")
        fields = _fields(model)
        count = 0
        if model is Segment:
            lookups.pop(Segment, None)
        for chunk in _chunks(_jsonl_rows(archive, name), 2000):
            objs, olds = [], []
            for row in chunk:
                values: dict[str, Any] = {}
                skip = False
                for f in fields:
                    raw = row.get(f.name)
                    if f.is_relation and f.related_model in runs:
                        values[f.attname] = (
                            None if raw is None else run_ids.get((f.related_model, raw))
                        )
                        if values[f.attname] is None and not f.null:
                            skip = True
                    elif f.is_relation:
                        if model is Segment and f.name == "parent":
                            if raw is not None:
                                parents.append((row["_id"], raw))
                            continue
                        target = None if raw is None else lookup(f.related_model).get(raw)
                        if target is None and raw is not None and not f.null:
                            skip = True
                        values[f.attname] = target
                    elif f.name in row:
                        values[f.attname] = _from_json(f, raw)
                if skip:
                    continue
                objs.append(model(organization_id=org_id, **values))
                olds.append(row["_id"])
            model.objects.bulk_create(objs, batch_size=1000)
            if model in runs or model is Segment:
                for old, obj in zip(olds, objs, strict=True):
                    if obj.pk is None:  # a backend that does not return ids
                        obj = model.objects.get(
                            **(
                                {"key": obj.key}
                                if model is Segment
                                else {"is_live": True, "as_of": obj.as_of}
                            )
                        )
                    if model is Segment:
                        segment_ids[old] = obj.pk
                    else:
                        run_ids[(model, old)] = obj.pk
            count += len(objs)
        written[name] = count
        if model is Segment:
            by_key = dict(Segment.objects.values_list("key", "pk"))
            for old, parent_key in parents:
                Segment.objects.filter(pk=segment_ids[old]).update(parent_id=by_key[parent_key])
            # the live run's figures name its segments by id: the new ones
            for run in SegmentationRun.objects.all():
                run.summary = _remap_segment_ids(run.summary, segment_ids, "summary")
                run.projection = _remap_segment_ids(run.projection, segment_ids, "projection")
                run.save(update_fields=["summary", "projection"])
    return written


def _counts() -> dict[str, int]:
    """Rows of the current organisation, as the manifest counts them."""
    from customers.models import ConsentChange, Customer, Event, Feedback, OrderLine, Product

    counts = {
        "customers.csv": Customer.objects.filter(erased_at__isnull=True).count(),
        "products.csv": Product.objects.count(),
        "orders.csv": OrderLine.objects.count(),
        "events.csv": Event.objects.count(),
        "feedback.csv": Feedback.objects.count(),
        "consent_changes.csv": ConsentChange.objects.count(),
    }
    for model, which in _restored_models():
        qs = model.objects.all()
        if which == "live":
            qs = qs.filter(is_live=True)
        elif which == "of live":
            qs = qs.filter(run__is_live=True)
        counts[_file_name(model)] = qs.count()
    return counts


def organization_restore(
    *,
    path: str | Path,
    owner_email: str,
    name: str | None = None,
    slug: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Create a new organisation from an archive and load everything in it that a
    restore brings back (docs/backups.md). Returns what was restored."""
    from accounts.tenancy import tenant_context

    from .privacy import EXPORTS

    report = progress or (lambda pct, msg: None)
    path = Path(path)
    if not path.is_file():
        raise ApplicationError(f"No such file: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ApplicationError(f"{path} is not a zip archive.") from None
    with archive:
        manifest = archive_manifest(archive)
        org = _create_organization(manifest, owner_email=owner_email, name=name, slug=slug)
        report(2, f"Created the organisation '{org.slug}'")
        corrected = {}
        with tenant_context(org), tempfile.TemporaryDirectory(prefix="segmenta-restore-") as tmp:
            imported = _run_imports(org, archive, Path(tmp), report)
            report(55, "Setting every field as archived")
            with one_snapshot():
                from customers.models import Customer, Event, Feedback, Product

                for file, model, key in (
                    ("customers.csv", Customer, "external_id"),
                    ("products.csv", Product, "sku"),
                    ("events.csv", Event, "external_id"),
                    ("feedback.csv", Feedback, "external_id"),
                ):
                    _, fields = EXPORTS[file]
                    corrected[file] = _exact_pass(
                        model, key, fields, _csv_rows(archive, file), key_column=0
                    )
                corrected["orders.csv"] = _exact_lines(archive)
                corrected["products (made by the import, not archived)"] = _extra_products(archive)
                consent = _consent_history(archive)
                restored = _restore_models(archive, report)
            counts = _counts()
        expected = manifest.get("files") or {}
        missing = {
            f: {"archived": expected[f], "restored": n}
            for f, n in counts.items()
            if f in expected and expected[f] != n
        }
    result = {
        "organization": {"id": org.pk, "slug": org.slug, "name": org.name},
        "imported": imported,
        "corrected": corrected,
        "consent_changes": consent,
        "restored": restored,
        "counts": counts,
        "differences": missing,
    }
    report(100, "Restored")
    if missing:
        raise ApplicationError(
            "The restore finished, but these files' rows differ from the archive: "
            + ", ".join(
                f"{f} (archived {v['archived']}, restored {v['restored']})"
                for f, v in missing.items()
            ),
            {"result": result},
        )
    return result


def _decimal_text(value: Any) -> Any:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else value


def organization_snapshot(*, customers_fields: Iterable[str] | None = None) -> dict:
    """The current organisation's data, named by external ids only, for comparing two
    organisations (a restore with its source): customers, orders with their lines,
    live segment memberships and predictions."""
    from customers import fields as customer_fields
    from customers.models import Customer, Order, OrderLine
    from predictions.models import CustomerPrediction
    from segmentation.models import SegmentMembership

    cf = list(customers_fields or customer_fields.names(exported=True))
    customers = {
        row[0]: tuple(_decimal_text(v) for v in row[1:])
        for row in Customer.objects.filter(erased_at__isnull=True).values_list(*cf)
    }
    order_fields = [
        "external_id",
        "customer__external_id",
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
        "lines_count",
    ]
    orders = {
        row[0]: tuple(_decimal_text(v) for v in row[1:])
        for row in Order.objects.values_list(*order_fields)
    }
    line_fields = [
        "order__external_id",
        "product__sku",
        "sku",
        "product_name",
        "category",
        "quantity",
        "unit_price",
        "amount",
        "discount_code",
        "discount_amount",
        "line_id",
    ]
    lines: dict[str, list] = {}
    for row in OrderLine.objects.order_by("order_id", "position", "pk").values_list(*line_fields):
        lines.setdefault(row[0], []).append(tuple(_decimal_text(v) for v in row[1:]))
    memberships = sorted(
        SegmentMembership.objects.filter(run__is_live=True).values_list(
            "segment__key", "customer__external_id"
        )
    )
    pred_fields = [
        f.name
        for f in CustomerPrediction._meta.concrete_fields
        if not f.is_relation and not f.primary_key
    ]
    predictions = {
        row[0]: row[1:]
        for row in CustomerPrediction.objects.filter(run__is_live=True).values_list(
            "customer__external_id", *pred_fields
        )
    }
    return {
        "customers": customers,
        "orders": orders,
        "lines": lines,
        "memberships": memberships,
        "predictions": predictions,
    }
