"""Imports as people see them: an uploaded file, its mapping, a job, a report."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from core.exceptions import ApplicationError
from core.jobs import JobCancelled, job_start

from ..models import Import, ImportStatus
from .imports import FIELDS, KINDS, build_plan, dry_run, file_limits, inspect, preview, run_file
from .imports.engine import Outcome, parse_rates

log = logging.getLogger("segmenta.imports")

REPORT_ERRORS = 200  # errors kept on the import record; the errors file has them all


def org_media_dir(organization_id: int, *parts: str) -> Path:
    """Every stored file of an organisation lives under MEDIA_ROOT/org_<id>/."""
    return Path(settings.MEDIA_ROOT, f"org_{organization_id}", *parts)


def _safe_name(name: str) -> str:
    base = os.path.basename(name or "upload.csv")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-120:] or "upload.csv"


def _inspect(path: str, *, organization, encoding=None, delimiter=None):
    """Read a stored file's header within the organisation's limits."""
    limits = file_limits.import_limits(organization=organization)
    return inspect(path, encoding=encoding, delimiter=delimiter, limits=limits)


def import_file_path(imp: Import) -> str:
    if imp.file:
        return str(Path(settings.MEDIA_ROOT, imp.file))
    return imp.options.get("source_path", "")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ApplicationError(
            f"Unknown kind '{kind}'. Use one of: {', '.join(KINDS)}.",
            {"fields": {"kind": "Unknown kind."}},
        )


def clean_options(options: dict | None) -> dict:
    out: dict[str, str | bool] = {}
    for key in ("date_format", "delimiter", "encoding"):
        value = (options or {}).get(key)
        if value:
            out[key] = str(value) if key == "delimiter" else str(value).strip()
    # Orders a person deleted are re-created only when asked (see DeletedOrder).
    if (options or {}).get("allow_deleted") in (True, "true", "on", "1", 1):
        out["allow_deleted"] = True
    rates = rates_option((options or {}).get("rates"))
    if rates:
        out["rates"] = rates  # type: ignore[assignment]
    return out


def rates_option(value) -> dict[str, str]:
    """Exchange rates an owner gives for an import, as stored on it: "ZAR=0.055,
    EUR=1.08" (the form, `--rate`) or {"ZAR": "0.055"} (the API) → {"ZAR": "0.055"}.
    Refuses a malformed entry, naming it."""
    if not value:
        return {}
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = []
        for part in re.split(r"[,;\s]+", str(value).strip()):
            if not part:
                continue
            code, sep, rate = part.partition("=")
            if not sep:
                raise ApplicationError(
                    f"Write each rate as CURRENCY=rate, such as ZAR=0.055 (got '{part}').",
                    {"fields": {"rates": "Write CURRENCY=rate."}},
                )
            pairs.append((code, rate))
    return {code: f"{rate.normalize():f}" for code, rate in parse_rates(dict(pairs)).items()}


@transaction.atomic
def import_create(
    *,
    organization,
    kind: str,
    uploaded_file,
    user=None,
    mapping: dict | None = None,
    options: dict | None = None,
    source: str = "upload",
) -> Import:
    """Store an uploaded file and read its header. Refuses files that cannot be read."""
    _check_kind(kind)
    size = getattr(uploaded_file, "size", None) or 0
    # the organisation's plan's limit (core.uploads already refused what is over the
    # platform's outer cap unread)
    file_limits.upload_size_check(organization=organization, size=size)
    if size == 0:
        raise ApplicationError("The file is empty.", {"fields": {"file": "Empty file."}})
    imp = Import.objects.create(
        kind=kind,
        original_filename=os.path.basename(uploaded_file.name or "upload.csv")[:255],
        size_bytes=size,
        source=source,
        options=clean_options(options),
        created_by=Actor.person(user),
    )
    relative = Path(
        f"org_{organization.pk}", "imports", f"{imp.pk}-{_safe_name(uploaded_file.name)}"
    )
    target = Path(settings.MEDIA_ROOT, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for chunk in uploaded_file.chunks():
            out.write(chunk)
    imp.file = str(relative)
    try:
        info = _inspect(
            str(target),
            organization=organization,
            encoding=imp.options.get("encoding"),
            delimiter=imp.options.get("delimiter"),
        )
        plan = build_plan(kind, info.header, mapping)
    except ApplicationError:
        target.unlink(missing_ok=True)
        raise
    imp.detected = {**info.as_dict(), "format": plan.fmt, "format_name": plan.label}
    imp.mapping = plan.mapping
    imp.save()
    return imp


def import_preview(*, imp: Import, rows: int = 8) -> dict:
    path = import_file_path(imp)
    info = _inspect(
        path,
        organization=imp.organization,
        encoding=imp.options.get("encoding"),
        delimiter=imp.options.get("delimiter"),
    )
    plan = build_plan(imp.kind, info.header, None)
    return {
        "info": info,
        "header": info.header,
        "rows": preview(info, rows),
        "suggested": plan.mapping,
        "format": plan.fmt,
        "format_name": plan.label,
        "fields": list(FIELDS[imp.kind]),
    }


def import_set_mapping(*, imp: Import, mapping: dict, options: dict | None = None) -> Import:
    """The form's choices: {column: field, "" to ignore, or an attribute name}."""
    if imp.status != ImportStatus.DRAFT:
        raise ApplicationError("This import has already started.")
    imp.options = clean_options(options) if options is not None else imp.options
    path = import_file_path(imp)
    info = _inspect(
        path,
        organization=imp.organization,
        encoding=imp.options.get("encoding"),
        delimiter=imp.options.get("delimiter"),
    )
    chosen = {}
    for column, target in mapping.items():
        if column in info.header:
            chosen[column] = target
    doubled = [f for f in FIELDS[imp.kind] if list(chosen.values()).count(f) > 1]
    if doubled:
        raise ApplicationError(
            f"Two columns are mapped to {', '.join(doubled)}; map each field once.",
            {"fields": {"mapping": "A field is mapped twice."}},
        )
    plan = build_plan(imp.kind, info.header, chosen)
    imp.mapping = plan.mapping
    imp.detected = {
        **imp.detected,
        **info.as_dict(),
        "format": plan.fmt,
        "format_name": plan.label,
    }
    imp.save(update_fields=["mapping", "options", "detected"])
    return imp


def _engine_options(imp: Import) -> dict:
    return {
        "mapping": imp.mapping or None,
        "date_format": imp.options.get("date_format"),
        "delimiter": imp.options.get("delimiter"),
        "encoding": imp.options.get("encoding"),
        "allow_deleted": bool(imp.options.get("allow_deleted")),
        "rates": imp.options.get("rates") or None,
    }


def import_validate(*, imp: Import, sample_rows: int = 1000) -> Outcome:
    """Dry run on the first rows; nothing is stored."""
    return dry_run(
        organization=imp.organization,
        path=import_file_path(imp),
        kind=imp.kind,
        sample_rows=sample_rows,
        source_label=f"import #{imp.pk} (check)",
        **_engine_options(imp),
    )


def import_start(*, imp: Import, user=None, sync: bool = False):
    """Queue the import as a background job (the site wizard and the API)."""
    from ..tasks import import_run

    if imp.status not in (ImportStatus.DRAFT, ImportStatus.FAILED, ImportStatus.CANCELLED):
        raise ApplicationError("This import is already queued or running.")
    # Refuse what cannot work before queueing: a missing required column.
    info = _inspect(
        import_file_path(imp),
        organization=imp.organization,
        encoding=imp.options.get("encoding"),
        delimiter=imp.options.get("delimiter"),
    )
    build_plan(imp.kind, info.header, imp.mapping or None).check()
    Import.objects.filter(pk=imp.pk).update(status=ImportStatus.QUEUED, message="Queued.")
    job = job_start(
        organization=imp.organization,
        kind="import",
        task=import_run,
        params={"import_id": imp.pk},
        user=user,
        title=f"Import {imp.get_kind_display().lower()} from {imp.original_filename or 'a file'}",
        sync=sync,
    )
    Import.objects.filter(pk=imp.pk).update(job=job)
    imp.refresh_from_db()
    return job


def import_cancelled(*, job) -> None:
    """The `import` job's `on_cancelled` hook: the job was cancelled before its body
    ran (while queued, or found cancelled when a worker picked it up), so
    `import_execute` never said so. The import, if still queued or running for this
    very job, becomes cancelled, and can be run again. Idempotent; an import a newer
    job took over is left alone."""
    now = timezone.now()
    mine = Import.objects.filter(job_id=job.pk)
    mine.filter(status=ImportStatus.QUEUED).update(
        status=ImportStatus.CANCELLED,
        message="Cancelled before it started: nothing was imported. Run it again when "
        "you are ready.",
        finished_at=now,
    )
    # Running: its worker stopped and the job was queued again, then cancelled.
    mine.filter(status=ImportStatus.RUNNING).update(
        status=ImportStatus.CANCELLED,
        message="Cancelled. What was imported is kept; run it again to finish (rows "
        "already imported are left unchanged).",
        finished_at=now,
    )


def _summary(imp: Import) -> str:
    parts = [
        f"{imp.rows:,} rows: {imp.created:,} new, {imp.updated:,} updated, "
        f"{imp.unchanged:,} unchanged, {imp.rejected:,} rejected."
    ]
    return " ".join(parts)


def _apply(imp: Import, outcome: Outcome) -> None:
    c = outcome.counts
    imp.rows, imp.created, imp.updated = c.rows, c.created, c.updated
    imp.unchanged, imp.rejected = c.unchanged, c.rejected
    imp.errors = outcome.errors[:REPORT_ERRORS]
    if outcome.detected:
        imp.detected = {
            **outcome.detected,
            "customers_created": c.customers_created,
            "products_created": c.products_created,
            "seconds": outcome.seconds,
        }
    if outcome.mapping:
        imp.mapping = outcome.mapping


def _import_actor(imp: Import, user=None):
    """Who brings an import's rows: the member who ran or uploaded it, else the system."""
    from accounts.actor import Actor

    if user is not None:
        return Actor.of(user, organization=imp.organization)
    if imp.created_by_id:
        return Actor.for_user(imp.created_by, imp.organization)
    return Actor.system(f"import #{imp.pk}")


def import_execute(
    *,
    imp: Import,
    progress=None,
    user=None,
    run_pipeline: bool = True,
    shift_days: int = 0,
    job_id: int | None = None,
) -> dict:
    """Run an import to the end (inside its job, or in-process for commands). Running
    it again (after a failure, a cancellation or a lost worker) ends in the same state."""
    if job_id:
        imp.job_id = job_id
    imp.status = ImportStatus.RUNNING
    imp.started_at = timezone.now()
    imp.finished_at = None
    imp.rows = imp.created = imp.updated = imp.unchanged = imp.rejected = 0
    imp.errors = []
    imp.message = "Running."
    imp.save()
    errors_rel = Path(f"org_{imp.organization_id}", "imports", f"{imp.pk}-errors.csv")
    errors_abs = Path(settings.MEDIA_ROOT, errors_rel)
    errors_abs.unlink(missing_ok=True)
    try:
        outcome = run_file(
            organization=imp.organization,
            path=import_file_path(imp),
            kind=imp.kind,
            progress=progress,
            errors_csv=str(errors_abs),
            source_label=f"import #{imp.pk} ({imp.original_filename})"[:200],
            actor=_import_actor(imp, user),
            shift_days=shift_days,
            **_engine_options(imp),
        )
    except BaseException as exc:
        partial = getattr(exc, "partial_outcome", None)
        if partial is not None:
            _apply(imp, partial)
        if isinstance(exc, JobCancelled):
            imp.status = ImportStatus.CANCELLED
            imp.message = (
                f"Cancelled. {_summary(imp)} What was imported is kept; run it again to finish "
                "(rows already imported are left unchanged)."
            )
        elif isinstance(exc, ApplicationError):
            imp.status = ImportStatus.FAILED
            imp.message = exc.message[:1000]
        else:
            imp.status = ImportStatus.FAILED
            imp.message = (
                "Something went wrong on our side. What was imported is kept; you can run it again."
            )
        imp.errors_file = str(errors_rel) if errors_abs.exists() else ""
        imp.finished_at = timezone.now()
        imp.save()
        raise
    _apply(imp, outcome)
    imp.errors_file = str(errors_rel) if errors_abs.exists() else ""
    imp.status = ImportStatus.SUCCEEDED
    imp.finished_at = timezone.now()
    imp.message = _summary(imp)
    imp.save()
    started = None
    if run_pipeline and outcome.changed_anything:
        from segmentation.pipeline import pipeline_after_data_change

        try:
            started = pipeline_after_data_change(organization=imp.organization, user=user)
        except ApplicationError as exc:
            log.info("import.pipeline_skipped import_id=%s reason=%s", imp.pk, exc.message)
    from webhooks.events import emit

    emit(
        imp.organization_id,
        "import.finished",
        {
            "import_id": imp.pk,
            "job_id": job_id,
            "kind": imp.kind,
            "rows": imp.rows,
            "created": imp.created,
            "updated": imp.updated,
            "unchanged": imp.unchanged,
            "rejected": imp.rejected,
        },
    )
    return {
        # the refresh this import started, by step (the integrator can follow them)
        "jobs": started.get("jobs", {}) if isinstance(started, dict) else {},
        "message": imp.message,
        "url": reverse("customers:import_detail", args=[imp.pk]),
        "import_id": imp.pk,
        "rows": imp.rows,
        "created": imp.created,
        "updated": imp.updated,
        "unchanged": imp.unchanged,
        "rejected": imp.rejected,
    }


def import_from_path(
    *,
    organization,
    path: str,
    kind: str,
    mapping: dict | None = None,
    options: dict | None = None,
    progress=None,
    run_pipeline: bool = True,
    shift_days: int = 0,
    user=None,
) -> tuple[Import, dict]:
    """A command-line import: the operator's file is read in place, in this process."""
    _check_kind(kind)
    if not os.path.isfile(path):
        raise ApplicationError(f"No such file: {path}")
    # An operator's file is not an upload: only a limit the plan sets itself applies.
    file_limits.upload_size_check(
        organization=organization, size=os.path.getsize(path), own_only=True
    )
    imp = Import.objects.create(
        kind=kind,
        original_filename=os.path.basename(path)[:255],
        size_bytes=os.path.getsize(path),
        source="command",
        mapping=mapping or {},
        options={**clean_options(options), "source_path": os.path.abspath(path)},
        created_by=user,
    )
    if mapping:
        # The mapping given is overrides on top of the suggestion.
        info = _inspect(
            path,
            organization=organization,
            encoding=imp.options.get("encoding"),
            delimiter=imp.options.get("delimiter"),
        )
        imp.mapping = build_plan(kind, info.header, mapping).mapping
        imp.save(update_fields=["mapping"])
    summary = import_execute(
        imp=imp, progress=progress, user=user, run_pipeline=run_pipeline, shift_days=shift_days
    )
    imp.refresh_from_db()
    return imp, summary


def import_errors_path(imp: Import) -> str | None:
    if not imp.errors_file:
        return None
    path = Path(settings.MEDIA_ROOT, imp.errors_file)
    return str(path) if path.exists() else None


def import_delete_files(imp: Import) -> None:
    for rel in (imp.file, imp.errors_file):
        if rel:
            Path(settings.MEDIA_ROOT, rel).unlink(missing_ok=True)


def org_media_remove(organization_id: int) -> None:
    shutil.rmtree(org_media_dir(organization_id), ignore_errors=True)
