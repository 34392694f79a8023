"""What one organisation may hold and do: the platform's defaults (settings), or
the organisation's own limits set by platform staff in the back office.

Every place that enforces a limit reads it through `limits_for(organization)`, and
refuses with `LimitReached`, whose message names the limit, its value and what to
do (the API answers 403 `limit_reached`, or 429 for the request rate).

| limit | default setting | enforced in |
| --- | --- | --- |
| `upload_bytes` | `UPLOAD_MAX_BYTES` | imports (site, API, command) |
| `import_rows`, `import_columns`, `attributes_bytes` | `IMPORT_MAX_*` | imports, bulk API |
| `customers` | `ORG_MAX_CUSTOMERS` | imports, bulk and single API writes, the site |
| `api_per_minute` | `API_THROTTLE_KEY` | the API's throttle (per key or member) |
| `emails_per_day` | `ORG_MAX_EMAILS_PER_DAY` | campaign and automation sends |
| `heavy_jobs` | `ORG_MAX_HEAVY_JOBS` | jobs of heavy kinds (core.jobs) |
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from django.conf import settings

from core.exceptions import ApplicationError
from core.formats import size_text

# What each limit is called for people, and how its value reads.
LABELS = {
    "upload_bytes": "largest upload",
    "import_rows": "rows in one file",
    "import_columns": "columns in one file",
    "attributes_bytes": "extra values of one record",
    "customers": "customers",
    "api_per_minute": "API requests a minute",
    "emails_per_day": "emails a day",
    "heavy_jobs": "heavy jobs at a time",
}
_BYTES = {"upload_bytes", "attributes_bytes"}


def _rate_per_minute(rate: str) -> int:
    count, _, period = rate.partition("/")
    per = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}[period[:1] or "m"]
    return max(1, round(int(count) / per))


@dataclass(frozen=True)
class Limits:
    upload_bytes: int
    import_rows: int
    import_columns: int
    attributes_bytes: int
    customers: int
    api_per_minute: int
    emails_per_day: int
    heavy_jobs: int
    # names of the fields set for this organisation (the rest are the defaults)
    own: frozenset[str] = frozenset()

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "own"]

    def text(self, name: str) -> str:
        """The value for people: `200 MB`, `1,000,000`."""
        value = getattr(self, name)
        return size_text(value) if name in _BYTES else f"{value:,}"


def default_limits() -> Limits:
    api_rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["key"]
    return Limits(
        upload_bytes=settings.UPLOAD_MAX_BYTES,
        import_rows=settings.IMPORT_MAX_ROWS,
        import_columns=settings.IMPORT_MAX_COLUMNS,
        attributes_bytes=settings.IMPORT_MAX_ATTRIBUTES_BYTES,
        customers=settings.ORG_MAX_CUSTOMERS,
        api_per_minute=_rate_per_minute(api_rate),
        emails_per_day=settings.ORG_MAX_EMAILS_PER_DAY,
        heavy_jobs=settings.ORG_MAX_HEAVY_JOBS,
    )


def limits_for(organization) -> Limits:
    """`organization` (an Organization or its id)'s limits: its own where staff set
    them, the platform's defaults elsewhere. One query."""
    from .models import OrganizationLimits

    base = default_limits()
    org_id = getattr(organization, "pk", organization)
    if org_id is None:
        return base
    row = OrganizationLimits.objects.filter(organization_id=org_id).first()
    if row is None:
        return base
    own = {n: getattr(row, n) for n in Limits.names() if getattr(row, n) is not None}
    values = {n: own.get(n, getattr(base, n)) for n in Limits.names()}
    return Limits(**values, own=frozenset(own))


class LimitReached(ApplicationError):
    """A limit of the organisation's plan stops this. The message says which limit,
    its value, and that the owner can ask Segmenta to raise it."""

    def __init__(
        self,
        name: str,
        limits: Limits,
        detail: str = "",
        *,
        status: int = 403,
        fields: dict[str, str] | None = None,
    ):
        label = LABELS[name]
        message = f"Your plan's limit of {limits.text(name)} {label} is reached"
        message += f": {detail}" if detail else "."
        if not message.endswith("."):
            message += "."
        message += " Ask Segmenta support to raise it."
        extra: dict = {"limit": name, "value": getattr(limits, name)}
        if fields:
            extra["fields"] = fields  # the form field or API field the refusal concerns
        super().__init__(message, extra, code="limit_reached", status=status)
        self.limit = name


def limit_reached_audit(*, organization, error: LimitReached) -> bool:
    """Tell the owner in the organisation's audit log that `error`'s limit stopped
    something: at most one entry per limit per day (UTC), however often it stops
    things, so the log stays readable. True when an entry was written. Call it
    outside any transaction that will be rolled back (a refused API batch)."""
    import datetime as dt

    from django.utils import timezone

    from .actor import Actor
    from .models import AuditAction, AuditLogEntry
    from .services import audit_log
    from .tenancy import tenant_context

    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tenant_context(organization):
        if AuditLogEntry.objects.filter(
            action=AuditAction.LIMIT_REACHED, created_at__gte=today, target=LABELS[error.limit]
        ).exists():
            return False
        audit_log(
            organization=organization,
            action=AuditAction.LIMIT_REACHED,
            actor=Actor.system("Segmenta", organization=organization),
            target=LABELS[error.limit],
            details={
                "limit": error.limit,
                "value": error.extra.get("value"),
                "message": error.message,
            },
        )
    return True
