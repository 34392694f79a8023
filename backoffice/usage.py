"""How each organisation uses the platform: the back office's usage figures, in one
place (selectors; the organisations overview, the change page and the tests read
them here).

Platform code across organisations: callers run inside `unscoped_context()` (the
admin does: the middleware opens it for staff), so on PostgreSQL the queries go to
the platform role. Every subquery filters by organisation itself (`all_objects`),
never through a scoped manager.

Windows: "this month" starts on the 1st at 00:00 UTC; "the last 7 days" are the
jobs created in the 7 × 24 hours before now. Time spent in jobs is the sum of
finished jobs' run time (`finished_at - started_at`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import ApiUsage, AuditAction, AuditLogEntry, Organization
from campaigns.models import Channel, Delivery
from core.models import Job, JobStatus
from customers.models import Customer, Import, ImportStatus, OrderLine
from customers.services.importing import org_media_dir

JOB_WINDOW_DAYS = 7

# The annotated columns, by name: what the overview sorts on and totals.
COUNT_COLUMNS = (
    "customers",
    "order_lines",
    "api_calls_month",
    "emails_month",
    "jobs_week",
    "jobs_failed_week",
)


def month_start(now: datetime | None = None) -> datetime:
    """The 1st of the current month, 00:00 UTC."""
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=JOB_WINDOW_DAYS)


def _count(queryset) -> models.Subquery:
    """COUNT(*) of `queryset`'s rows of the outer organisation, 0 when none."""
    sub = (
        queryset.filter(organization=OuterRef("pk"))
        .order_by()
        .values("organization")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(models.Subquery(sub, output_field=models.BigIntegerField()), 0)


def _latest(queryset, field: str) -> models.Subquery:
    sub = (
        queryset.filter(organization=OuterRef("pk"))
        .order_by()
        .values("organization")
        .annotate(m=Max(field))
        .values("m")
    )
    return models.Subquery(sub, output_field=models.DateTimeField())


def _run_time():
    return ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def organizations_with_usage(queryset=None, *, now: datetime | None = None):
    """Organisations (`queryset`, default all) annotated with their usage: customers
    (not erased), order lines, API calls and emails this month, last sign-in, last
    import, jobs run and failed and time spent in jobs in the last 7 days. Every
    figure is a subquery column, so the list sorts on any of them in the database."""
    now = now or timezone.now()
    month, week = month_start(now), week_start(now)
    queryset = Organization.objects.all() if queryset is None else queryset
    jobs_week = Job.all_objects.filter(created_at__gte=week)
    api_sub = (
        ApiUsage.all_objects.filter(organization=OuterRef("pk"), day__gte=month.date())
        .order_by()
        .values("organization")
        .annotate(n=Sum("requests"))
        .values("n")
    )
    time_sub = (
        jobs_week.filter(
            organization=OuterRef("pk"), started_at__isnull=False, finished_at__isnull=False
        )
        .order_by()
        .values("organization")
        .annotate(d=Sum(_run_time()))
        .values("d")
    )
    return queryset.annotate(
        customers=_count(Customer.all_objects.filter(erased_at__isnull=True)),
        order_lines=_count(OrderLine.all_objects.all()),
        api_calls_month=Coalesce(
            models.Subquery(api_sub, output_field=models.BigIntegerField()), 0
        ),
        emails_month=_count(Delivery.all_objects.filter(channel=Channel.EMAIL, sent_at__gte=month)),
        last_sign_in=_latest(
            AuditLogEntry.all_objects.filter(action=AuditAction.SIGN_IN), "created_at"
        ),
        last_import=_latest(Import.all_objects.exclude(status=ImportStatus.DRAFT), "created_at"),
        jobs_week=_count(jobs_week),
        jobs_failed_week=_count(jobs_week.filter(status=JobStatus.FAILED)),
        job_time_week=models.Subquery(time_sub, output_field=DurationField()),
    )


@dataclass(frozen=True)
class StoredFiles:
    count: int
    bytes: int


def organization_files(organization_id: int) -> StoredFiles:
    """The files under the organisation's media folder (uploads, exports, error
    reports): how many and their total size. Not in the database, so not sortable."""
    count = size = 0
    root = org_media_dir(organization_id)
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except OSError:  # removed meanwhile
                continue
            count += 1
    return StoredFiles(count=count, bytes=size)


@dataclass(frozen=True)
class Totals:
    organizations: int
    active: int
    suspended: int
    customers: int
    order_lines: int
    api_calls_month: int
    emails_month: int
    jobs_week: int
    jobs_failed_week: int
    job_time_week: timedelta
    files: int
    files_bytes: int


def usage_totals(queryset=None, *, now: datetime | None = None) -> Totals:
    """The platform's totals over the organisations of `queryset` (default all):
    counted afresh over those organisations' rows, not summed from the columns."""
    now = now or timezone.now()
    month, week = month_start(now), week_start(now)
    queryset = Organization.objects.all() if queryset is None else queryset
    ids = list(queryset.order_by().values_list("pk", flat=True))
    statuses = dict(
        Organization.objects.filter(pk__in=ids)
        .order_by()
        .values("status")
        .annotate(n=Count("*"))
        .values_list("status", "n")
    )
    jobs = Job.all_objects.filter(organization__in=ids, created_at__gte=week)
    job_time = jobs.filter(started_at__isnull=False, finished_at__isnull=False).aggregate(
        t=Sum(_run_time())
    )["t"]
    files = [organization_files(pk) for pk in ids]
    return Totals(
        organizations=len(ids),
        active=statuses.get("active", 0),
        suspended=statuses.get("suspended", 0),
        customers=Customer.all_objects.filter(organization__in=ids, erased_at__isnull=True).count(),
        order_lines=OrderLine.all_objects.filter(organization__in=ids).count(),
        api_calls_month=ApiUsage.all_objects.filter(
            organization__in=ids, day__gte=month.date()
        ).aggregate(n=Sum("requests"))["n"]
        or 0,
        emails_month=Delivery.all_objects.filter(
            organization__in=ids, channel=Channel.EMAIL, sent_at__gte=month
        ).count(),
        jobs_week=jobs.count(),
        jobs_failed_week=jobs.filter(status=JobStatus.FAILED).count(),
        job_time_week=job_time or timedelta(0),
        files=sum(f.count for f in files),
        files_bytes=sum(f.bytes for f in files),
    )


def organization_usage(organization: Organization, *, now: datetime | None = None):
    """One organisation with its usage columns (the change page's figures)."""
    return organizations_with_usage(Organization.objects.filter(pk=organization.pk), now=now).get()


def failing_jobs(*, days: int = JOB_WINDOW_DAYS, kind: str = "", organization_id=None, now=None):
    """Failed jobs of every organisation created in the last `days` days, newest first."""
    now = now or timezone.now()
    jobs = Job.all_objects.filter(
        status=JobStatus.FAILED, created_at__gte=now - timedelta(days=days)
    )
    return _narrow(jobs, kind=kind, organization_id=organization_id)


def stuck_jobs(*, kind: str = "", organization_id=None, now=None):
    """Jobs that should be moving and are not: running with a heartbeat older than
    JOB_STALE_AFTER_SECONDS (its worker died?), or queued for longer than
    JOB_QUEUED_WARNING_SECONDS (no worker picking up?). Oldest first."""
    from django.conf import settings

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    waiting = now - timedelta(seconds=settings.JOB_QUEUED_WARNING_SECONDS)
    jobs = Job.all_objects.filter(
        Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
        | Q(status=JobStatus.RUNNING, heartbeat_at__isnull=True, started_at__lt=stale)
        | Q(
            status=JobStatus.RUNNING,
            heartbeat_at__isnull=True,
            started_at__isnull=True,
            created_at__lt=stale,
        )
        | Q(status=JobStatus.QUEUED, created_at__lt=waiting)
    ).filter(
        # not paused while the organisation is suspended (core.jobs._pause): those
        # wait on purpose, and its reactivation sends them again
        ~Q(status=JobStatus.QUEUED) | Q(params___paused__isnull=True)
    )
    return _narrow(jobs, kind=kind, organization_id=organization_id).order_by("created_at")


def _narrow(jobs, *, kind: str, organization_id):
    if kind:
        jobs = jobs.filter(kind=kind)
    if organization_id:
        jobs = jobs.filter(organization_id=organization_id)
    return jobs.select_related("organization").order_by("-created_at")


def jobs_state(*, now=None) -> dict:
    """Jobs of every organisation by state, for the health page: queued, running,
    stale (running without a heartbeat for JOB_STALE_AFTER_SECONDS), and the age of
    the oldest queued job."""
    now = now or timezone.now()
    counts = dict(
        Job.all_objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by()
        .values("status")
        .annotate(n=Count("*"))
        .values_list("status", "n")
    )
    oldest = (
        Job.all_objects.filter(status=JobStatus.QUEUED)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    stale = stuck_jobs(now=now).filter(status=JobStatus.RUNNING).count()
    return {
        "queued": counts.get(JobStatus.QUEUED, 0),
        "running": counts.get(JobStatus.RUNNING, 0),
        "stale": stale,
        "oldest_queued_age": (now - oldest) if oldest else None,
    }


def duration_text(value: timedelta | None) -> str:
    """`2 h 05 min`, `3 min 20 s`, `—` for nothing."""
    if not value:
        return "—"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours:,} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@dataclass(frozen=True)
class UsageLine:
    label: str
    text: str
    attention: bool = False  # at or over its limit


def usage_against_limits(organization: Organization, *, now: datetime | None = None):
    """The change page's figures in plain words, each against its limit where it
    has one: "1,234 of 2,000,000 customers"."""
    from accounts.limits import limits_for
    from core.formats import size_text

    now = now or timezone.now()
    row = organization_usage(organization, now=now)
    limits = limits_for(organization)
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    emails_today = Delivery.all_objects.filter(
        organization=organization, channel=Channel.EMAIL, sent_at__gte=day
    ).count()
    running = Job.all_objects.filter(organization=organization, status=JobStatus.RUNNING).count()
    files = organization_files(organization.pk)

    def own(name: str) -> str:
        return "" if name in limits.own else " (platform default)"

    return [
        UsageLine(
            "Customers",
            f"{row.customers:,} of {limits.customers:,} customers{own('customers')}",
            row.customers >= limits.customers,
        ),
        UsageLine(
            "Emails",
            f"{emails_today:,} of {limits.emails_per_day:,} emails today (UTC){own('emails_per_day')}; "
            f"{row.emails_month:,} this month",
            emails_today >= limits.emails_per_day,
        ),
        UsageLine(
            "API",
            f"{row.api_calls_month:,} API calls this month; at most "
            f"{limits.api_per_minute:,} a minute per key or member{own('api_per_minute')}",
        ),
        UsageLine(
            "Jobs",
            f"{row.jobs_week:,} jobs in the last 7 days, {row.jobs_failed_week:,} failed, "
            f"{duration_text(row.job_time_week)} spent; {running:,} running now, at most "
            f"{limits.heavy_jobs:,} heavy jobs at a time{own('heavy_jobs')}",
            row.jobs_failed_week > 0,
        ),
        UsageLine("Order lines", f"{row.order_lines:,} order lines"),
        UsageLine(
            "Stored files",
            f"{files.count:,} file{'' if files.count == 1 else 's'}, {size_text(files.bytes)}; "
            f"largest upload "
            f"{limits.text('upload_bytes')}{own('upload_bytes')}",
        ),
        UsageLine(
            "Imports",
            f"at most {limits.text('import_rows')} rows{own('import_rows')} and "
            f"{limits.text('import_columns')} columns{own('import_columns')} in one file, "
            f"{limits.text('attributes_bytes')} of extra values a record{own('attributes_bytes')}; "
            + (
                f"last import {timezone.localtime(row.last_import):%Y-%m-%d %H:%M}"
                if row.last_import
                else "no import yet"
            ),
        ),
        UsageLine(
            "Last sign-in",
            f"{timezone.localtime(row.last_sign_in):%Y-%m-%d %H:%M}"
            if row.last_sign_in
            else "no one has signed in yet",
        ),
    ]


@dataclass(frozen=True)
class PlanLine:
    label: str
    text: str
    used: int | None = None  # with `limit`: drawn as a meter
    limit: int | None = None

    @property
    def near(self) -> bool:
        """At 80% of the limit or more."""
        return bool(self.limit) and self.used is not None and self.used >= 0.8 * self.limit


def plan_usage(organization: Organization, *, now: datetime | None = None) -> list[PlanLine]:
    """What the organisation's plan allows and how much of it is used, for its
    members (Settings → Organisation): the figures staff see, in the owner's words."""
    from accounts.limits import limits_for

    now = now or timezone.now()
    limits = limits_for(organization)
    customers = Customer.all_objects.filter(
        organization=organization, erased_at__isnull=True
    ).count()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    emails_today = Delivery.all_objects.filter(
        organization=organization, channel=Channel.EMAIL, sent_at__gte=day
    ).count()
    return [
        PlanLine(
            "Customers",
            f"{customers:,} of {limits.customers:,}",
            customers,
            limits.customers,
        ),
        PlanLine(
            "Emails today",
            f"{emails_today:,} of {limits.emails_per_day:,} (the day starts at 00:00 UTC; "
            "emails over the limit wait until then)",
            emails_today,
            limits.emails_per_day,
        ),
        PlanLine("API requests", f"up to {limits.api_per_minute:,} a minute for each API key"),
        PlanLine(
            "Files you import",
            f"up to {limits.text('upload_bytes')}, {limits.text('import_rows')} rows and "
            f"{limits.text('import_columns')} columns each",
        ),
        PlanLine(
            "Analysis",
            f"{limits.heavy_jobs:,} long analysis job{'' if limits.heavy_jobs == 1 else 's'} "
            "at a time; more wait their turn",
        ),
    ]
