"""The back office's own admin pages: the organisation actions (suspend, reactivate,
schedule and cancel deletion), failing and stuck jobs with re-run, and the health
page. Each runs inside the admin (`admin_site.admin_view`: staff only, in the
escape hatch) and checks its own permission."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import suspension
from accounts.models import Organization, OrganizationStatus
from core.exceptions import ApplicationError
from core.models import Job

from . import health, usage
from .services import RERUN_AS, job_rerun_by_staff

# --- organisation actions ------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="The owner reads it on the sign-in page and in the audit log.",
        error_messages={"required": "Write the reason: the owner will read it."},
    )


class ConfirmForm(forms.Form):
    pass


class ScheduleDeletionForm(ReasonForm):
    when = forms.DateField(
        label="Delete on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The owners get an export of everything first; deletion happens on this day.",
        error_messages={"required": "Give the day of deletion.", "invalid": "Give a date."},
    )
    confirm_slug = forms.CharField(
        label="Type the organisation's slug to confirm",
        max_length=60,
        error_messages={"required": "Type the organisation's slug to confirm."},
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        self.organization = organization
        super().__init__(*args, **kwargs)
        grace = settings.ORG_DELETION_GRACE_DAYS
        self.fields["when"].initial = (timezone.now() + timedelta(days=grace)).date()
        self.fields["when"].help_text += f" Default: in {grace} days."
        # Named in the help, not as a placeholder (grey text in the box read as filled in).
        self.fields["confirm_slug"].help_text = f"Type “{organization.slug}”."

    def clean_when(self) -> date:
        when = self.cleaned_data["when"]
        if when <= timezone.now().astimezone(UTC).date():
            raise forms.ValidationError("The day of deletion must be after today.")
        return when

    def clean_confirm_slug(self) -> str:
        typed = self.cleaned_data["confirm_slug"].strip()
        if typed != self.organization.slug:
            raise forms.ValidationError(
                f"That is not this organisation's slug; type {self.organization.slug} to confirm."
            )
        return typed

    def when_datetime(self) -> datetime:
        """The chosen day at this time of day (UTC): the default is exactly the grace."""
        now = timezone.now().astimezone(UTC)
        return datetime.combine(self.cleaned_data["when"], now.timetz())


@dataclass(frozen=True)
class OrgAction:
    label: str
    permission: str
    applies: Callable[[Organization], bool]
    form: type[forms.Form]
    run: Callable[..., Any]
    intro: str
    done: str
    danger: bool = False


def _suspend(org, user, form, request):
    suspension.organization_suspend(
        organization=org, actor=user, reason=form.cleaned_data["reason"], request=request
    )


def _reactivate(org, user, form, request):
    suspension.organization_reactivate(organization=org, actor=user, request=request)


def _schedule(org, user, form, request):
    suspension.organization_schedule_deletion(
        organization=org,
        actor=user,
        reason=form.cleaned_data["reason"],
        when=form.when_datetime(),
        request=request,
    )


def _cancel(org, user, form, request):
    suspension.organization_cancel_deletion(organization=org, actor=user, request=request)


ORG_ACTIONS: dict[str, OrgAction] = {
    "suspend": OrgAction(
        label="Suspend",
        permission="accounts.suspend_organization",
        applies=lambda org: org.status == OrganizationStatus.ACTIVE,
        form=ReasonForm,
        run=_suspend,
        intro=(
            "Its members cannot sign in and its API keys are refused; its jobs and sends "
            "wait. Nothing is deleted. The owner sees the reason."
        ),
        done="{org} is suspended.",
        danger=True,
    ),
    "reactivate": OrgAction(
        label="Reactivate",
        permission="accounts.suspend_organization",
        applies=lambda org: org.status == OrganizationStatus.SUSPENDED,
        form=ConfirmForm,
        run=_reactivate,
        intro=(
            "Its members can sign in again, its API keys work, and paused jobs and sends "
            "start again. A scheduled deletion is cancelled."
        ),
        done="{org} is active again.",
    ),
    "schedule-deletion": OrgAction(
        label="Schedule deletion",
        permission="accounts.schedule_deletion",
        applies=lambda org: org.deletion_scheduled_for is None,
        form=ScheduleDeletionForm,
        run=_schedule,
        intro=(
            "Scheduling the deletion suspends the organisation at once; its owners get an "
            "export of everything, and on the day chosen all its data is deleted through "
            "the owners' own deletion path."
        ),
        done="{org} will be deleted on the day chosen; it is suspended until then.",
        danger=True,
    ),
    "cancel-deletion": OrgAction(
        label="Cancel deletion",
        permission="accounts.schedule_deletion",
        applies=lambda org: org.deletion_scheduled_for is not None,
        form=ConfirmForm,
        run=_cancel,
        intro="The deletion is called off. The organisation stays suspended until reactivated.",
        done="{org}'s deletion is cancelled; it is still suspended.",
    ),
}


def organization_action_view(request, object_id: str, *, model_admin, action: str):
    act = ORG_ACTIONS.get(action)
    if act is None:
        raise Http404("No such action.")
    if not request.user.has_perm(act.permission):
        raise PermissionDenied
    org = Organization.objects.filter(pk=_int_or_none(unquote(object_id))).first()
    if org is None:
        raise Http404("No such organisation.")
    back = reverse("admin:accounts_organization_change", args=[org.pk])
    if not act.applies(org):
        messages.warning(request, f"{act.label} does not apply to {org} as it is now.")
        return redirect(back)
    kwargs = {"organization": org} if act.form is ScheduleDeletionForm else {}
    form = act.form(request.POST if request.method == "POST" else None, **kwargs)
    if request.method == "POST" and form.is_valid():
        try:
            act.run(org, request.user, form, request)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, act.done.format(org=org))
            return redirect(back)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Organization._meta,
        "original": org,
        "title": f"{act.label}: {org}",
        "action": act,
        "form": form,
        "back": back,
    }
    return TemplateResponse(request, "admin/backoffice/organization_action.html", context)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- failing and stuck jobs ----------------------------------------------------------

MAX_DAYS = 90
LIST_LIMIT = 200


def failing_jobs_view(request, *, model_admin):
    if not request.user.has_perm("accounts.view_platform_health"):
        raise PermissionDenied
    from core.jobs import job_kinds

    errors = []
    days = usage.JOB_WINDOW_DAYS
    raw_days = request.GET.get("days", "").strip()
    if raw_days:
        parsed = _int_or_none(raw_days)
        if parsed is None or not 1 <= parsed <= MAX_DAYS:
            errors.append(
                f"Days must be a whole number from 1 to {MAX_DAYS} (got “{raw_days[:20]}”); "
                f"showing the last {days} days."
            )
        else:
            days = parsed
    kind = request.GET.get("kind", "").strip()[:40]
    org_id = _int_or_none(request.GET.get("org"))
    failed = usage.failing_jobs(days=days, kind=kind, organization_id=org_id)
    stuck = usage.stuck_jobs(kind=kind, organization_id=org_id)
    failed_count, stuck_count = failed.count(), stuck.count()
    org_ids = set(failed.values_list("organization_id", flat=True)[:1000])
    org_ids |= set(stuck.values_list("organization_id", flat=True)[:1000])
    if org_id:
        org_ids.add(org_id)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Job._meta,
        "title": "Failing jobs across organisations",
        "failed": _with_rerun_as(failed[:LIST_LIMIT]),
        "stuck": _with_rerun_as(stuck[:LIST_LIMIT]),
        "failed_count": failed_count,
        "stuck_count": stuck_count,
        "limit": LIST_LIMIT,
        "days": days,
        "kind": kind,
        "org_id": org_id,
        "kinds": sorted(job_kinds()),
        "organizations": Organization.objects.filter(pk__in=org_ids).order_by("name"),
        "errors": errors,
        "can_rerun": request.user.has_perm("core.change_job"),
        "stale_after": settings.JOB_STALE_AFTER_SECONDS,
        "queued_warning": settings.JOB_QUEUED_WARNING_SECONDS,
        "here": request.get_full_path(),
    }
    return TemplateResponse(request, "admin/backoffice/failing_jobs.html", context)


def _with_rerun_as(jobs) -> list[Job]:
    """The jobs, each with `rerun_as`: the fresh job's id once re-run here, else None."""
    listed = list(jobs)
    for job in listed:
        job.rerun_as = (job.params or {}).get(RERUN_AS)
    return listed


def job_rerun_view(request, object_id: str, *, model_admin):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm("core.change_job"):
        raise PermissionDenied
    job = (
        Job.objects.filter(pk=_int_or_none(unquote(object_id)))
        .select_related("organization")
        .first()
    )
    if job is None:
        raise Http404("No such job.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("admin:core_job_failing")
    try:
        new = job_rerun_by_staff(job=job, staff=request.user, request=request)
    except ApplicationError as exc:
        messages.error(request, f"Job #{job.pk} of {job.organization}: {exc.message}")
    else:
        if new.pk == job.pk:
            messages.success(
                request, f"Job #{job.pk} of {job.organization} was sent to the workers again."
            )
        else:
            messages.success(
                request,
                f"Job #{job.pk} of {job.organization} runs again as job #{new.pk}.",
            )
    return redirect(back)


def failing_jobs_count() -> int:
    """Failed jobs of the last 7 days plus stuck jobs: the admin index's figure."""
    return usage.failing_jobs().count() + usage.stuck_jobs().count()


# --- health ----------------------------------------------------------------------------


def health_view(request, *, model_admin):
    if not request.user.has_perm("accounts.view_platform_health"):
        raise PermissionDenied
    checks = health.platform_health()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Job._meta,
        "title": "Platform health",
        "checks": checks,
        "all_ok": all(c.ok for c in checks),
        "checked_at": timezone.now(),
    }
    return TemplateResponse(request, "admin/backoffice/health.html", context)


__all__ = [
    "ORG_ACTIONS",
    "failing_jobs_view",
    "health_view",
    "job_rerun_view",
    "organization_action_view",
]
