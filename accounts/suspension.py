"""Suspending, reactivating and scheduling the deletion of an organisation (platform
staff, from the back office). A suspended organisation's members cannot sign in
and its API keys get 403 `organization_suspended`; its jobs and sends wait; its
data is kept. A scheduled deletion suspends it, starts an export of everything
(the owners' own export), and deletes it on the date through the owners' own
deletion path.

Services write the organisation's audit log (actor kind "staff"), so the owner
sees who did what and why.
"""

from __future__ import annotations

SUSPENDED_CODE = "organization_suspended"


def suspended_message(organization) -> str:
    """What members and API clients are told, naming the organisation."""
    raise NotImplementedError


def organization_is_active(organization_id: int) -> bool:
    """Whether the organisation may sign in, call the API, run jobs and send."""
    raise NotImplementedError


def organization_suspend(*, organization, actor, reason: str, request=None):
    """Suspend `organization` (staff `actor`, a `reason` people read). Idempotent."""
    raise NotImplementedError


def organization_reactivate(*, organization, actor, request=None):
    """Lift a suspension (and cancel a scheduled deletion); paused jobs start again."""
    raise NotImplementedError


def organization_schedule_deletion(*, organization, actor, reason: str, when=None, request=None):
    """Suspend, export, and delete on `when` (default now + ORG_DELETION_GRACE_DAYS)."""
    raise NotImplementedError


def organization_cancel_deletion(*, organization, actor, request=None):
    """Cancel a scheduled deletion; the organisation stays suspended until reactivated."""
    raise NotImplementedError


def organizations_delete_due(*, now=None) -> int:
    """The periodic task's work: delete organisations whose date has come."""
    raise NotImplementedError
