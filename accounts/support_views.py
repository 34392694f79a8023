"""Settings → Support access: the owner's side of support access grants."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError

from . import support as support_services
from .decorators import org_required
from .models import Role, SupportGrant

_DECISIONS = {
    "approve": (support_services.grant_approve, "Approved: {who} can look until {until}."),
    "decline": (support_services.grant_decline, "Declined: {who} gets no access."),
    "revoke": (support_services.grant_revoke, "Ended: {who} no longer has access."),
}


@org_required(role=Role.OWNER)
def support(request):
    grants = support_services.grants_for_owner(organization=request.organization)
    return render(
        request,
        "accounts/support.html",
        {
            "tab": "support",
            "pending": grants["pending"],
            "active": grants["active"],
            "history": grants["history"],
            "max_hours": settings.SUPPORT_GRANT_MAX_HOURS,
            "time_zone": request.organization.time_zone or "UTC",
        },
    )


@org_required(role=Role.OWNER)
@require_POST
def support_decide(request, pk: int, decision: str):
    if decision not in _DECISIONS:
        raise Http404("No such decision.")
    grant = get_object_or_404(SupportGrant.objects.select_related("staff"), pk=pk)
    service, done = _DECISIONS[decision]
    try:
        grant = service(grant=grant, actor=request.user, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        until = grant.expires_at
        messages.success(
            request,
            done.format(
                who=grant.staff.email,
                until=support_services.when_text(until, request.organization) if until else "",
            ),
        )
    return redirect("accounts:support")
