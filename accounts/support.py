"""Support access: platform staff open an organisation's customer records, orders
and feedback in the back office only through a grant the owner approved (or an
emergency grant with a reason), for a limited time; every view is written to the
organisation's audit log, which its owners see (Settings → Audit log, and
Settings → Support access).

`grant_active_for` is the one check every gated screen asks. Every service writes
the organisation's audit log; what staff do is recorded as "Segmenta support"
(`Actor.staff`). `support_view_record` names what was seen by kind and row id only
("customer #123", "customers list"): never an email, a name, an external id or a
search term, so a person erased later leaves no identifier in the audit log.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core.exceptions import ApplicationError, PermissionDenied

from .actor import Actor
from .models import Membership, Organization, Role, SupportGrant, SupportGrantKind
from .services import audit_log
from .tenancy import tenant_context

log = logging.getLogger(__name__)

REASON_MIN_CHARS = 10
REASON_MAX_CHARS = 500  # SupportGrant.reason
EMERGENCY_DEFAULT_HOURS = 4
REQUEST_PERMISSION = "accounts.request_support_access"
EMERGENCY_PERMISSION = "accounts.emergency_support_access"
# What a view names: a kind of record and its row id, or a list, with an optional
# plain note ("customers list (filtered)"). No '@', '.', digits outside '#<id>' or
# capitals: an email, an external id or a name typed by someone cannot pass.
_SAFE_WHAT = re.compile(r"^[a-z][a-z ]{0,60}( #\d{1,20})?( \([a-z ,]{1,60}\))?$")


# --- Checks ------------------------------------------------------------------------


def _max_hours() -> int:
    return int(settings.SUPPORT_GRANT_MAX_HOURS)


def _emergency_max_hours() -> int:
    return int(getattr(settings, "SUPPORT_EMERGENCY_MAX_HOURS", EMERGENCY_DEFAULT_HOURS))


def _clean_reason(reason) -> str:
    text = " ".join(str(reason or "").split())
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ApplicationError(
            "The reason holds characters that cannot be stored; type it again.",
            {"fields": {"reason": "Characters that cannot be stored."}},
        )
    if len(text) < REASON_MIN_CHARS:
        raise ApplicationError(
            f"Give a reason of at least {REASON_MIN_CHARS} characters: the owners read it "
            "before they decide.",
            {"fields": {"reason": f"At least {REASON_MIN_CHARS} characters."}},
        )
    if len(text) > REASON_MAX_CHARS:
        raise ApplicationError(
            f"The reason is {len(text)} characters long; keep it to {REASON_MAX_CHARS}.",
            {"fields": {"reason": f"At most {REASON_MAX_CHARS} characters."}},
        )
    return text


def _clean_hours(hours, *, most: int) -> int:
    try:
        value = int(str(hours).strip())
    except (TypeError, ValueError):
        value = None
    if value is None or not 1 <= value <= most:
        raise ApplicationError(
            f"Access lasts from 1 to {most} hours; {hours!r} is not a number of hours in that range.",
            {"fields": {"hours": f"A whole number from 1 to {most}."}},
        )
    return value


def _require_staff(staff, permission: str, message: str) -> None:
    if not (
        staff is not None
        and getattr(staff, "is_active", False)
        and getattr(staff, "is_staff", False)
        and staff.has_perm(permission)
    ):
        raise PermissionDenied(message)


def _require_owner(*, grant: SupportGrant, actor) -> Actor:
    who = Actor.of(actor, organization=grant.organization)
    if (
        not (who.is_user and who.id)
        or not Membership.objects.filter(
            organization_id=grant.organization_id, user_id=who.id, role=Role.OWNER
        ).exists()
    ):
        raise PermissionDenied("Only an owner of this organisation can decide on support access.")
    return who


def _organization(organization) -> Organization:
    if isinstance(organization, Organization):
        return organization
    return Organization.objects.get(pk=organization)


# --- Owners are told by email ------------------------------------------------------------


def _notify_owners(*, grant: SupportGrant, template: str, subject: str) -> None:
    organization = grant.organization
    owners = list(
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .select_related("user")
        .values_list("user__email", flat=True)
    )
    if not owners:
        return
    body = render_to_string(
        f"accounts/email/{template}",
        {
            "grant": grant,
            "organization": organization,
            "staff_email": grant.staff.email,
            "link": settings.SITE_URL + reverse("accounts:support"),
            "audit_link": settings.SITE_URL + reverse("accounts:audit"),
            "until": when_text(grant.expires_at, organization) if grant.expires_at else "",
        },
    )
    transaction.on_commit(lambda: send_mail(subject, body, None, owners))


# --- Services ----------------------------------------------------------------------------


def _refuse_a_second_request(*, organization, staff) -> None:
    """One open request or grant per staff member and organisation: the owners are
    not emailed again while they have one to decide on or one is running."""
    mine = SupportGrant.objects.filter(
        staff_id=staff.pk, declined_at__isnull=True, revoked_at__isnull=True
    )
    if mine.filter(approved_at__isnull=True).exists():
        raise ApplicationError(
            f"You already asked {organization.name}'s owners; wait for their decision "
            "(or withdraw that request first)."
        )
    running = mine.filter(_active_q(timezone.now())).order_by("-expires_at").first()
    if running is not None:
        raise ApplicationError(
            f"You already have access to {organization.name} until "
            f"{when_text(running.expires_at, organization)}."
        )


def grant_request(*, organization, staff, reason: str, hours: int = 24, request=None):
    """Staff ask the owners for access; the owners are told by email."""
    _require_staff(
        staff, REQUEST_PERMISSION, "Only platform staff allowed to ask for support access can."
    )
    organization = _organization(organization)
    reason = _clean_reason(reason)
    hours = _clean_hours(hours, most=_max_hours())
    with tenant_context(organization), transaction.atomic():
        _refuse_a_second_request(organization=organization, staff=staff)
        grant = SupportGrant.objects.create(
            organization=organization,
            staff=staff,
            kind=SupportGrantKind.REQUESTED,
            reason=reason,
            hours=hours,
        )
        audit_log(
            organization=organization,
            action="support_requested",
            actor=Actor.staff(staff, organization),
            target=f"support access #{grant.pk}",
            details={"hours": hours, "reason": reason},
            request=request,
        )
        _notify_owners(
            grant=grant,
            template="support_requested.txt",
            subject=f"Segmenta support asks to see {organization.name}'s customer data",
        )
    log.info(
        "support.grant_requested org_id=%s grant_id=%s staff_id=%s",
        organization.pk,
        grant.pk,
        staff.pk,
    )
    return grant


def grant_approve(*, grant, actor, request=None):
    """An owner approves: access runs for `grant.hours` from now."""
    return _decide(grant=grant, actor=actor, approve=True, request=request)


def grant_decline(*, grant, actor, request=None):
    return _decide(grant=grant, actor=actor, approve=False, request=request)


def _decide(*, grant, actor, approve: bool, request=None):
    """An owner's answer to a pending request, under a lock on the grant."""
    with tenant_context(grant.organization_id), transaction.atomic():
        grant = SupportGrant.objects.select_for_update().get(pk=grant.pk)
        who = _require_owner(grant=grant, actor=actor)
        if grant.status != "pending":
            raise ApplicationError(
                f"This request is no longer waiting for a decision (it is {grant.status})."
            )
        now = timezone.now()
        details = {"staff": grant.staff.email}
        if approve:
            grant.approved_at = now
            grant.expires_at = now + timedelta(hours=grant.hours)
            details["until"] = when_text(grant.expires_at, grant.organization)
            changed = ["approved_at", "expires_at"]
        else:
            grant.declined_at = now
            changed = ["declined_at"]
        grant.decided_by = who.user
        grant.save(update_fields=[*changed, "decided_by"])
        audit_log(
            organization=grant.organization,
            action="support_approved" if approve else "support_declined",
            actor=who,
            target=f"support access #{grant.pk}",
            details=details,
            request=request,
        )
    return grant


def grant_revoke(*, grant, actor, request=None):
    """An owner (or the staff member) ends access early."""
    with tenant_context(grant.organization_id), transaction.atomic():
        grant = SupportGrant.objects.select_for_update().get(pk=grant.pk)
        user = Actor.person(actor) if not isinstance(actor, Actor) else actor.user
        if user is not None and user.pk == grant.staff_id:
            who = Actor.staff(user, grant.organization)
        else:
            who = _require_owner(grant=grant, actor=actor)
        if grant.status not in ("pending", "active"):
            raise ApplicationError(f"This access has already ended (it is {grant.status}).")
        grant.revoked_at = timezone.now()
        if who.is_user:
            grant.decided_by = who.user
        grant.save(update_fields=["revoked_at", "decided_by"])
        audit_log(
            organization=grant.organization,
            action="support_revoked",
            actor=who,
            target=f"support access #{grant.pk}",
            details={"staff": grant.staff.email},
            request=request,
        )
    return grant


def grant_emergency(*, organization, staff, reason: str, hours: int = 4, request=None):
    """Open access at once (permission `accounts.emergency_support_access`); the
    owners are told by email and see it in their audit log."""
    _require_staff(
        staff,
        EMERGENCY_PERMISSION,
        "Emergency access needs the 'emergency support access' permission.",
    )
    organization = _organization(organization)
    reason = _clean_reason(reason)
    hours = _clean_hours(hours, most=_emergency_max_hours())
    now = timezone.now()
    with tenant_context(organization), transaction.atomic():
        grant = SupportGrant.objects.create(
            organization=organization,
            staff=staff,
            kind=SupportGrantKind.EMERGENCY,
            reason=reason,
            hours=hours,
            created_at=now,
            approved_at=now,
            expires_at=now + timedelta(hours=hours),
            decided_by=staff,
        )
        audit_log(
            organization=organization,
            action="support_emergency",
            actor=Actor.staff(staff, organization),
            target=f"support access #{grant.pk}",
            details={
                "hours": hours,
                "until": when_text(grant.expires_at, organization),
                "reason": reason,
            },
            request=request,
        )
        _notify_owners(
            grant=grant,
            template="support_emergency.txt",
            subject=f"Segmenta support opened emergency access to {organization.name}'s data",
        )
    log.warning(
        "support.grant_emergency org_id=%s grant_id=%s staff_id=%s hours=%s",
        organization.pk,
        grant.pk,
        staff.pk,
        hours,
    )
    return grant


# --- Reads -------------------------------------------------------------------------------


def _active_q(now):
    from django.db.models import Q

    return Q(
        approved_at__isnull=False,
        declined_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    )


def grant_active_for(*, staff, organization_id: int):
    """The staff member's active grant for the organisation, or None."""
    if (
        staff is None
        or not getattr(staff, "is_authenticated", False)
        or not getattr(staff, "is_active", False)
        or not getattr(staff, "is_staff", False)
        or not organization_id
    ):
        return None
    try:
        organization_id = int(organization_id)
    except (TypeError, ValueError):
        return None
    with tenant_context(organization_id):
        return (
            SupportGrant.objects.filter(_active_q(timezone.now()), staff_id=staff.pk)
            .select_related("organization")
            .order_by("-expires_at")
            .first()
        )


def grants_active_of(*, staff) -> list[SupportGrant]:
    """Every active grant of a staff member, across organisations (the back
    office's "choose an organisation" page). Platform code: unscoped on purpose."""
    from .tenancy import unscoped_context

    if not getattr(staff, "is_staff", False):
        return []
    with unscoped_context():
        return list(
            SupportGrant.objects.unscoped()
            .filter(_active_q(timezone.now()), staff_id=staff.pk)
            .select_related("organization")
            .order_by("organization__name", "-expires_at")
        )


def grants_for_owner(*, organization) -> dict[str, list[SupportGrant]]:
    """The owner's page: pending requests, active grants and the rest (history)."""
    with tenant_context(organization):
        grants = list(
            SupportGrant.objects.select_related("staff", "decided_by").order_by("-created_at")
        )
    out: dict[str, list[SupportGrant]] = {"pending": [], "active": [], "history": []}
    for grant in grants:
        status = grant.status
        out[status if status in ("pending", "active") else "history"].append(grant)
    return out


def support_view_record(*, grant, staff, what: str, request=None) -> None:
    """Write 'Viewed by Segmenta support: <what>' to the organisation's audit log."""
    if grant is None or grant.staff_id != getattr(staff, "pk", None) or not grant.is_active:
        raise PermissionDenied("No active support access for this organisation.")
    if not _SAFE_WHAT.match(what or ""):
        # A programming error, not a user's: refuse rather than log an identifier.
        raise ValueError("support_view_record names records by kind and row id only.")
    audit_log(
        organization=grant.organization,
        action="support_viewed",
        actor=Actor.staff(staff, grant.organization),
        target=what,
        # which access it was under, as the owner's Support access page shows it
        details={"access_until": when_text(grant.expires_at, grant.organization)},
        request=request,
    )


def when_text(moment, organization=None) -> str:
    """A moment in the organisation's time zone, as owners read it."""
    zone = None
    name = getattr(organization, "time_zone", "") or ""
    if name:
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
    return timezone.localtime(moment, zone).strftime("%Y-%m-%d %H:%M %Z")
