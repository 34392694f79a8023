"""Reads for accounts."""

from __future__ import annotations

from .models import Membership


def membership_for_request(*, user) -> Membership | None:
    """The membership of the user's current organisation, else their first one."""
    if not getattr(user, "is_authenticated", False):
        return None
    memberships = Membership.objects.select_related("organization").filter(user=user)
    if user.current_organization_id:
        chosen = memberships.filter(organization_id=user.current_organization_id).first()
        if chosen is not None:
            return chosen
    return memberships.order_by("created_at").first()


def memberships_of_user(*, user):
    return (
        Membership.objects.select_related("organization")
        .filter(user=user)
        .order_by("organization__name")
    )
