"""Reads for accounts."""

from __future__ import annotations

import datetime as dt

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


def api_requests(*, organization_id: int, since: dt.date | dt.datetime) -> int:
    """API requests the organisation made from `since` (a day, or a moment: its day
    in UTC) to now: the sum of its daily counters (`ApiUsage`, counted by
    accounts.api.throttling). Platform code calls it inside `unscoped_context()`;
    in an organisation's own scope it sees that organisation's counters only."""
    from django.db.models import Sum

    from .models import ApiUsage
    from .tenancy import bypass_active

    if isinstance(since, dt.datetime):
        since = since.astimezone(dt.UTC).date() if since.tzinfo else since.date()
    rows = ApiUsage.objects.unscoped() if bypass_active() else ApiUsage.objects.all()
    total = rows.filter(organization_id=organization_id, day__gte=since).aggregate(
        total=Sum("requests")
    )["total"]
    return int(total or 0)
