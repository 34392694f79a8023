"""Support access: platform staff open an organisation's customer records, orders
and feedback in the back office only through a grant the owner approved (or an
emergency grant with a reason), for a limited time; every view is written to the
organisation's audit log, which its owners see (Settings → Audit log, and
Settings → Support access)."""

from __future__ import annotations


def grant_request(*, organization, staff, reason: str, hours: int = 24, request=None):
    """Staff ask the owners for access; the owners are told by email."""
    raise NotImplementedError


def grant_approve(*, grant, actor, request=None):
    """An owner approves: access runs for `grant.hours` from now."""
    raise NotImplementedError


def grant_decline(*, grant, actor, request=None):
    raise NotImplementedError


def grant_revoke(*, grant, actor, request=None):
    """An owner (or the staff member) ends access early."""
    raise NotImplementedError


def grant_emergency(*, organization, staff, reason: str, hours: int = 4, request=None):
    """Open access at once (permission `accounts.emergency_support_access`); the
    owners are told by email and see it in their audit log."""
    raise NotImplementedError


def grant_active_for(*, staff, organization_id: int):
    """The staff member's active grant for the organisation, or None."""
    raise NotImplementedError


def support_view_record(*, grant, staff, what: str, request=None) -> None:
    """Write 'Viewed by Segmenta support: <what>' to the organisation's audit log."""
    raise NotImplementedError
