"""Suspending, reactivating and scheduling the deletion of an organisation (platform
staff, from the back office). A suspended organisation's members cannot sign in
and its API keys get 403 `organization_suspended`; its jobs and sends wait; its
data is kept. A scheduled deletion suspends it, starts an export of everything
(the owners' own export), and deletes it on the date through the owners' own
deletion path.

Services write the organisation's audit log (actor kind "staff"), so the owner
sees who did what and why.

Where it is enforced: the site (accounts.middleware sends members to
`accounts:suspended`; sign-in refuses members who are not owners), the API
(accounts.api.authentication), jobs (core.jobs.TenantTask pauses them; an
export and an erasure's clean-up still run), the nightly pipeline fan-out, and
campaign sends (campaigns, which raise core.jobs.JobPaused).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core.exceptions import ApplicationError

from .actor import Actor
from .models import Membership, Organization, OrganizationStatus, Role
from .services import audit_log
from .tenancy import tenant_context

log = logging.getLogger("segmenta.accounts")

SUSPENDED_CODE = "organization_suspended"
STAFF = "staff"  # AuditLogEntry.actor_kind: shown as "Segmenta support"


# --- what people are told ------------------------------------------------------------


def support_contact() -> str:
    """Who members of a suspended organisation write to: `SUPPORT_EMAIL`, else
    support@ the domain Segmenta sends from."""
    configured = settings.SUPPORT_EMAIL
    if configured:
        return configured
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "segmenta.local"
    return f"support@{domain}"


def _day(value: dt.datetime) -> str:
    local = timezone.localtime(value, dt.UTC)
    return f"{local.day} {local:%B %Y}"


def suspended_message(organization) -> str:
    """What members and API clients are told, naming the organisation."""
    reason = (organization.status_reason or "").strip().rstrip(".")
    text = f"{organization.name} is suspended by Segmenta"
    text += f": {reason}." if reason else "."
    if organization.deletion_scheduled_for:
        text += f" It will be deleted on {_day(organization.deletion_scheduled_for)}."
    return f"{text} Its data is kept. Contact {support_contact()} about it."


def paused_message(organization) -> str:
    """A job's message while its organisation is suspended."""
    name = organization.name if organization is not None else "the organisation"
    return f"Paused while {name} is suspended."


def organization_is_active(organization_id: int) -> bool:
    """Whether the organisation may sign in, call the API, run jobs and send.

    One primary-key query and no cache: the site and the API read the status of the
    organisation they have loaded already (`organization.is_active`), so this serves
    jobs and sends, where a query is cheap beside the work, and a cache would let a
    suspended organisation's jobs start for a while."""
    status = (
        Organization.objects.filter(pk=organization_id).values_list("status", flat=True).first()
    )
    return status == OrganizationStatus.ACTIVE


# --- who acts ------------------------------------------------------------------------


def staff_actor(actor, organization=None) -> Actor:
    """Platform staff as an audit actor (kind "staff"): a staff user, an Actor, or
    nothing (an operator's command on the server)."""
    if isinstance(actor, Actor):
        return actor
    if actor is not None and getattr(actor, "is_authenticated", False):
        return Actor.staff(actor, organization)
    return Actor(
        kind=STAFF, id=None, label="Segmenta support (operator command)", organization=organization
    )


def _audit(organization, action: str, actor, details: dict, request=None) -> None:
    audit_log(
        organization=organization,
        action=action,
        actor=staff_actor(actor, organization),
        target=organization.name,
        details=details,
        request=request,
    )


def _owner_emails(organization) -> list[str]:
    return list(
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .select_related("user")
        .values_list("user__email", flat=True)
    )


def _email_owners(organization, subject: str, body: str) -> None:
    """Plain-text mail to every owner once the change is committed; a mail server
    that fails does not undo the change (logged)."""
    recipients = _owner_emails(organization)
    if not recipients:
        return
    text = f"Hello,\n\n{body}\n\nQuestions: {support_contact()}\n\n— Segmenta\n"

    def send() -> None:
        for address in recipients:
            try:
                send_mail(subject, text, None, [address])
            except Exception:
                log.exception("organization.owner_mail_failed org_id=%s", organization.pk)

    transaction.on_commit(send)


def _reload(organization) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization.pk)


def _copy(source: Organization, target) -> None:
    for field in ("status", "status_reason", "suspended_at", "deletion_scheduled_for"):
        setattr(target, field, getattr(source, field))


def _clean_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise ApplicationError(
            "Give a reason: the organisation's owners read it.",
            {"fields": {"reason": "Required."}},
        )
    if len(reason) > 500:
        raise ApplicationError(
            f"The reason is {len(reason)} characters long; at most 500 fit.",
            {"fields": {"reason": "Too long."}},
        )
    return reason


# --- services ------------------------------------------------------------------------


def _as_organization(func):
    """Run a service as the organisation, in one transaction on its connection. The
    back office calls these inside the platform's escape hatch, whose ORM goes
    through the platform's connection on PostgreSQL: the row lock, the audit entry,
    the export job and the emails sent on commit must share one transaction."""

    @functools.wraps(func)
    def wrapped(*, organization, **kwargs):
        with tenant_context(organization), transaction.atomic():
            return func(organization=organization, **kwargs)

    return wrapped


@_as_organization
def organization_suspend(*, organization, actor, reason: str, request=None):
    """Suspend `organization` (staff `actor`, a `reason` people read). Idempotent."""
    return _suspend(organization=organization, actor=actor, reason=reason, request=request)


def _suspend(*, organization, actor, reason: str, request=None, email: bool = True):
    reason = _clean_reason(reason)
    org = _reload(organization)
    if org.status == OrganizationStatus.SUSPENDED and org.status_reason == reason:
        _copy(org, organization)
        return organization  # nothing changes: no second entry or email
    again = org.status == OrganizationStatus.SUSPENDED
    org.status = OrganizationStatus.SUSPENDED
    org.status_reason = reason
    org.suspended_at = org.suspended_at or timezone.now()
    org.save(update_fields=["status", "status_reason", "suspended_at"])
    _copy(org, organization)
    _audit(org, "org_suspended", actor, {"reason": reason}, request)
    log.warning(
        "organization.suspended org_id=%s by=%s reason_changed=%s",
        org.pk,
        staff_actor(actor).label,
        again,
    )
    if email:
        _email_owners(
            org,
            f"{org.name} is suspended on Segmenta",
            f"Segmenta support has suspended {org.name}.\n\nReason: {reason}\n\n"
            "While it is suspended, its members cannot use Segmenta (owners can sign "
            "in to a page that says why), programs using its API keys are turned away, "
            "and its scheduled work and messages wait. Its data is kept.\n\n"
            f"Questions: {support_contact()}",
        )
    return organization


@_as_organization
def organization_reactivate(*, organization, actor, request=None):
    """Lift a suspension (and cancel a scheduled deletion); paused jobs start again."""
    org = _reload(organization)
    if org.status == OrganizationStatus.ACTIVE and org.deletion_scheduled_for is None:
        _copy(org, organization)
        return organization
    details = {"reason": org.status_reason} if org.status_reason else {}
    if org.deletion_scheduled_for:
        details["deletion_cancelled"] = _day(org.deletion_scheduled_for)
    org.status = OrganizationStatus.ACTIVE
    org.status_reason = ""
    org.suspended_at = None
    org.deletion_scheduled_for = None
    org.save(update_fields=["status", "status_reason", "suspended_at", "deletion_scheduled_for"])
    _copy(org, organization)
    _audit(org, "org_reactivated", actor, details, request)
    log.warning("organization.reactivated org_id=%s by=%s", org.pk, staff_actor(actor).label)
    _email_owners(
        org,
        f"{org.name} is active again on Segmenta",
        f"Segmenta support has reactivated {org.name}. Its members can sign in, its "
        "API keys work, and the jobs and messages that waited start again.",
    )
    # Sent once the reactivation is committed, so a worker reads the organisation active.
    transaction.on_commit(lambda: _resume(org))
    return organization


def _resume(org: Organization) -> None:
    from core.jobs import jobs_resume_paused

    with tenant_context(org):
        count = jobs_resume_paused(organization=org)
    log.info("organization.jobs_resumed org_id=%s jobs=%s", org.pk, count)


@_as_organization
def organization_schedule_deletion(*, organization, actor, reason: str, when=None, request=None):
    """Suspend, export, and delete on `when` (default now + ORG_DELETION_GRACE_DAYS)."""
    from core.jobs import job_start
    from core.models import Job
    from customers.tasks import organization_export

    reason = _clean_reason(reason)
    when = when or timezone.now() + dt.timedelta(days=settings.ORG_DELETION_GRACE_DAYS)
    if when <= timezone.now():
        raise ApplicationError("The deletion date must be in the future.")
    _suspend(organization=organization, actor=actor, reason=reason, request=request, email=False)
    org = _reload(organization)
    org.deletion_scheduled_for = when
    org.save(update_fields=["deletion_scheduled_for"])
    _copy(org, organization)
    # The owners' own export, started by the platform (no person): it runs while the
    # organisation is suspended (core.jobs.RUNS_WHILE_SUSPENDED).
    job = job_start(
        organization=org,
        kind="org_export",
        task=organization_export,
        params={"user_id": None},
        user=None,
        title="Export all data before deletion (zip of CSV files)",
    )
    # Marked for the suspended page and the export's expiry; "_" keys are not passed
    # to the task.
    Job.objects.filter(pk=job.pk).update(params={**job.params, "_for_deletion": True})
    _audit(
        org,
        "deletion_scheduled",
        actor,
        {"reason": reason, "date": _day(when), "export_job": job.pk},
        request,
    )
    log.warning(
        "organization.deletion_scheduled org_id=%s when=%s by=%s",
        org.pk,
        when.isoformat(),
        staff_actor(actor).label,
    )
    _email_owners(
        org,
        f"{org.name} will be deleted on {_day(when)}",
        f"Segmenta support has suspended {org.name} and scheduled its deletion on "
        f"{_day(when)}.\n\nReason: {reason}\n\n"
        "An export of all its data (a zip of CSV files) is being prepared. Owners can "
        f"still sign in to download it until then: {settings.SITE_URL}/accounts/suspended/\n\n"
        "On that date the organisation, its data and its files are deleted for good.",
    )
    return organization


@_as_organization
def organization_cancel_deletion(*, organization, actor, request=None):
    """Cancel a scheduled deletion; the organisation stays suspended until reactivated."""
    org = _reload(organization)
    if org.deletion_scheduled_for is None:
        _copy(org, organization)
        return organization
    was = org.deletion_scheduled_for
    org.deletion_scheduled_for = None
    org.save(update_fields=["deletion_scheduled_for"])
    _copy(org, organization)
    _audit(org, "deletion_cancelled", actor, {"date": _day(was)}, request)
    log.warning("organization.deletion_cancelled org_id=%s by=%s", org.pk, staff_actor(actor).label)
    return organization


def _scheduled_by(org: Organization) -> str:
    from .models import AuditLogEntry

    with tenant_context(org):
        entry = (
            AuditLogEntry.objects.filter(action="deletion_scheduled")
            .order_by("-created_at")
            .values_list("actor_label", flat=True)
            .first()
        )
    return entry or "Segmenta support"


def organizations_delete_due(*, now=None) -> int:
    """The periodic task's work: delete organisations whose date has come."""
    from customers.services.privacy import organization_remove

    now = now or timezone.now()
    due = list(
        Organization.objects.filter(
            status=OrganizationStatus.SUSPENDED, deletion_scheduled_for__lte=now
        ).order_by("deletion_scheduled_for", "pk")
    )
    deleted = 0
    for org in due:
        try:
            with tenant_context(org), transaction.atomic():
                # Read again under a lock: a reactivation or a cancellation since the
                # list was made wins.
                current = (
                    Organization.objects.select_for_update()
                    .filter(
                        pk=org.pk,
                        status=OrganizationStatus.SUSPENDED,
                        deletion_scheduled_for__lte=now,
                    )
                    .first()
                )
                if current is None:
                    continue
                who = _scheduled_by(current)
                organization_remove(
                    organization=current,
                    actor=Actor.system(f"deletion scheduled by {who}"),
                    details={"scheduled_by": who, "reason": current.status_reason},
                )
            deleted += 1
        except Exception:  # one organisation's failure must not stop the others
            log.exception("organization.scheduled_delete_failed org_id=%s", org.pk)
    return deleted


# --- signing in ----------------------------------------------------------------------


def sign_in_decision(user) -> tuple[str, str]:
    """Whether `user` may sign in, given their organisations' status: ("", url to
    land on or "") to go ahead, or (refusal, "") for a member whose every
    organisation is suspended. Owners of a suspended organisation may sign in to
    its suspended page only (to download its export); platform staff always may (the
    back office). With some organisations active, the user lands on an active one."""
    memberships = list(
        Membership.objects.filter(user=user).select_related("organization").order_by("created_at")
    )
    if not memberships:
        return "", ""
    current = next(
        (m for m in memberships if m.organization_id == user.current_organization_id), None
    )
    active = [m for m in memberships if m.organization.is_active]
    if active:
        if current is None or not current.organization.is_active:
            user.current_organization = active[0].organization
            user.save(update_fields=["current_organization"])
        return "", ""
    owned = [m for m in memberships if m.role == Role.OWNER]
    if owned or user.is_staff:
        chosen = (current if current in owned else None) or (owned or memberships)[0]
        if user.current_organization_id != chosen.organization_id:
            user.current_organization = chosen.organization
            user.save(update_fields=["current_organization"])
        return "", "" if user.is_staff and not owned else reverse("accounts:suspended")
    refusal = " ".join(suspended_message(m.organization) for m in memberships)
    return f"You cannot sign in: {refusal}", ""
