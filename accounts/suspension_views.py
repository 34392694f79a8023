"""The page members of a suspended organisation see."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse

from .models import OrganizationStatus, Role
from .suspension import support_contact, suspended_message


def _deletion_exports(organization) -> list[dict]:
    """The exports prepared for a scheduled deletion (owners download them here),
    newest first: ready ones with their link, the others with what they are doing."""
    from core.models import Job, JobStatus
    from customers.services.privacy import organization_export_expires_at, organization_export_state

    exports = []
    for job in Job.objects.filter(kind="org_export").order_by("-created_at"):
        if not (job.params or {}).get("_for_deletion"):
            continue
        state, _, note = organization_export_state(job)
        entry = {"job": job, "ready": state == "ready", "note": note, "url": ""}
        if state == "ready":
            entry["url"] = reverse("customers:org_export_download", args=[job.pk])
            entry["expires_at"] = organization_export_expires_at(job)
        elif job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            entry["note"] = "Being prepared; come back to this page in a while."
        elif job.status == JobStatus.FAILED:
            entry["note"] = f"It could not be prepared ({job.message}). Contact Segmenta support."
        exports.append(entry)
    return exports


def suspended(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    org = request.organization
    if org is None or org.is_active:
        return redirect("core:dashboard")
    is_owner = request.membership is not None and request.membership.role == Role.OWNER
    others = [
        m
        for m in request.user.memberships.select_related("organization").order_by(
            "organization__name"
        )
        if m.organization_id != org.pk and m.organization.status == OrganizationStatus.ACTIVE
    ]
    context = {
        "suspended_org": org,
        # No menu: every page of the organisation leads back here.
        "organization": None,
        "message": suspended_message(org),
        "reason": org.status_reason,
        "contact": support_contact(),
        "deletion": org.deletion_scheduled_for,
        "is_owner": is_owner,
        "exports": _deletion_exports(org) if is_owner else [],
        "others": others,
    }
    return render(request, "accounts/suspended.html", context)
