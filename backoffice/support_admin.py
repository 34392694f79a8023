"""Back office side of support access: asking for a grant, emergency grants, and
the gate on customer records, orders and feedback (accounts/support.py).

`SupportGatedAdmin` is the gate every admin of customer-level rows inherits
(customers/admin.py, segmentation/admin.py). For every staff member, superusers
included:

- a list without an organisation filter shows the staff member's active grants
  to choose from (and a link to ask for access), never rows;
- a list filtered to an organisation, or one of its records, needs the staff
  member's active grant for that organisation (`grant_active_for`), else a 403
  page saying to ask the owner;
- with a grant, the rows are that organisation's only, read-only (no add, change,
  delete or actions), and every list page and record shown writes one
  "Viewed by Segmenta support" entry to the organisation's audit log, naming the
  kind of record and its id, never a person's details or a search term.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts import support
from accounts.models import Organization, SupportGrant
from core.admin import ReadOnlyAdminMixin
from core.exceptions import ApplicationError

ORG_PARAM = "organization__id__exact"  # the admin's own name for the organisation filter


# --- The gate --------------------------------------------------------------------------


class GrantedOrganizationFilter(admin.SimpleListFilter):
    """The organisation filter, offering only the organisations the staff member
    has an active grant for (the gate refuses any other)."""

    title = "organisation (your support access)"
    parameter_name = ORG_PARAM

    def lookups(self, request, model_admin):
        return [
            (str(g.organization_id), g.organization.name)
            for g in support.grants_active_of(staff=request.user)
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(organization_id=value)
        return queryset


def _org_id(value) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


class SupportGatedAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only admin of customer-level rows, open only through a support grant."""

    show_full_result_count = False  # no COUNT(*) over millions of rows
    list_select_related = ["organization"]
    actions = None
    # Where a list names a record: "customer #12"; the list itself: "customers list".
    support_record_name: str = ""
    support_list_name: str = ""

    # --- names for the audit log (kind and id only) ---

    def _record_name(self) -> str:
        return self.support_record_name or str(self.model._meta.verbose_name).lower()

    def _list_name(self) -> str:
        return self.support_list_name or f"{str(self.model._meta.verbose_name_plural).lower()} list"

    # --- who may look at all: staff who may ask for access (the grant, checked in
    # every view, is what opens an organisation; no model permission does) ---

    def has_module_permission(self, request):
        return _may_use_support(request.user)

    def has_view_permission(self, request, obj=None):
        return _may_use_support(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def get_list_filter(self, request):
        filters = [f for f in super().get_list_filter(request) if f != "organization"]
        return [GrantedOrganizationFilter, *filters]

    # --- only the granted organisation's rows, whatever the view ---

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        grant = getattr(request, "_support_grant", None)
        if grant is None:
            return qs.none()
        return qs.filter(organization_id=grant.organization_id)

    def _grant_or_refusal(self, request, organization_id: int | None):
        """(grant, None) or (None, the 403 page)."""
        grant = support.grant_active_for(staff=request.user, organization_id=organization_id or 0)
        if grant is not None:
            return grant, None
        organization = (
            Organization.objects.filter(pk=organization_id).first() if organization_id else None
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "No support access",
            "opts": self.model._meta,
            "organization": organization,
            "request_url": _request_url(organization),
            # an open request of this staff member, waiting for the owner's answer
            "pending": (
                SupportGrant.objects.unscoped()
                .filter(
                    organization_id=organization.pk,
                    staff=request.user,
                    approved_at__isnull=True,
                    declined_at__isnull=True,
                    revoked_at__isnull=True,
                )
                .first()
                if organization is not None
                else None
            ),
        }
        return None, TemplateResponse(
            request, "admin/backoffice/support_denied.html", context, status=403
        )

    def changelist_view(self, request, extra_context=None):
        _only_reading(request)
        values = [v for v in request.GET.getlist(ORG_PARAM) if v != ""]
        if not values:
            return self._choose_organisation(request)
        organization_id = _org_id(values[0]) if len(set(values)) == 1 else None
        grant, refusal = self._grant_or_refusal(request, organization_id)
        if refusal is not None:
            return refusal
        request._support_grant = grant
        response = super().changelist_view(request, extra_context)
        if request.method in ("GET", "HEAD") and response.status_code == 200:
            notes = [
                note
                for param, note in (("q", "searched"), ("p", "another page"))
                if request.GET.get(param)
            ]
            if len([k for k in request.GET if k not in (ORG_PARAM, "q", "p", "o")]):
                notes.insert(0, "filtered")
            what = self._list_name() + (f" ({', '.join(notes)})" if notes else "")
            support.support_view_record(grant=grant, staff=request.user, what=what, request=request)
        return response

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None:
            raise PermissionDenied("The back office does not add customer data.")
        _only_reading(request)
        try:
            organization_id = (
                self.model._default_manager.filter(pk=object_id)
                .values_list("organization_id", flat=True)
                .first()
            )
        except (ValueError, TypeError, ValidationError):
            organization_id = None
        if organization_id is None:
            # No such record: Django's own "does not exist" answer (nothing to show).
            return super().changeform_view(request, object_id, form_url, extra_context)
        grant, refusal = self._grant_or_refusal(request, organization_id)
        if refusal is not None:
            return refusal
        request._support_grant = grant
        response = super().changeform_view(request, object_id, form_url, extra_context)
        if request.method in ("GET", "HEAD") and response.status_code == 200:
            support.support_view_record(
                grant=grant,
                staff=request.user,
                what=f"{self._record_name()} #{int(object_id)}",
                request=request,
            )
        return response

    def history_view(self, request, object_id, extra_context=None):
        raise PermissionDenied("The history of customer data is not shown in the back office.")

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied("The back office does not delete customer data.")

    def _choose_organisation(self, request):
        opts = self.model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        grants = [
            {"grant": g, "url": f"{changelist}?{ORG_PARAM}={g.organization_id}"}
            for g in support.grants_active_of(staff=request.user)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Choose an organisation to see its {opts.verbose_name_plural}",
            "opts": opts,
            "grants": grants,
            "request_url": _request_url(None),
            "grants_url": reverse("admin:accounts_supportgrant_changelist"),
        }
        return TemplateResponse(request, "admin/backoffice/support_choose.html", context)


def _only_reading(request) -> None:
    """Gated pages answer GET and HEAD only: the admin renders a list for a POST
    (no actions, nothing editable) or an OPTIONS too, and what is shown must be
    what is audited."""
    if request.method not in ("GET", "HEAD"):
        raise PermissionDenied("The back office only reads customer data.")


class SupportGatedInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Rows shown inside a gated record (its parent's gate applies): read-only."""

    extra = 0
    can_delete = False


def _may_use_support(user) -> bool:
    return bool(
        user.is_active
        and user.is_staff
        and (
            user.has_perm(support.REQUEST_PERMISSION) or user.has_perm(support.EMERGENCY_PERMISSION)
        )
    )


def _request_url(organization) -> str:
    url = reverse("admin:accounts_supportgrant_request")
    return f"{url}?organization={organization.pk}" if organization is not None else url


# --- Grants: asking, emergency, ending ------------------------------------------------------


class GrantRequestForm(forms.Form):
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.order_by("name"),
        label="Organisation",
        empty_label="Choose…",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        min_length=support.REASON_MIN_CHARS,
        max_length=support.REASON_MAX_CHARS,
        help_text="The owners read this before they decide, and it stays in their audit log.",
    )
    hours = forms.IntegerField(min_value=1, label="Hours of access")

    def __init__(self, *args, max_hours: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hours"] = forms.IntegerField(
            min_value=1,
            max_value=max_hours,
            label="Hours of access",
            help_text=f"From 1 to {max_hours}, counted from when access opens.",
        )


class SupportGrantAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A staff member's own grants, with "Request access", "Emergency access" and
    "End access"."""

    change_list_template = "admin/backoffice/support_grant_change_list.html"
    list_display = [
        "organization",
        "kind",
        "status_text",
        "reason",
        "hours",
        "created_at",
        "expires_at",
        "open_link",
    ]
    list_select_related = ["organization"]
    list_filter = ["kind"]
    actions = None
    readonly_fields = [f.name for f in SupportGrant._meta.fields]

    @admin.display(description="status")
    def status_text(self, grant):
        return grant.status

    @admin.display(description="")
    def open_link(self, grant):
        if not grant.is_active and grant.status != "pending":
            return ""
        end = reverse("admin:accounts_supportgrant_end", args=[grant.pk])
        if grant.status == "pending":
            return format_html('<a href="{}">Withdraw</a>', end)
        customers = reverse("admin:customers_customer_changelist")
        return format_html(
            '<a href="{}?{}={}">Open customers</a> · <a href="{}">End access</a>',
            customers,
            ORG_PARAM,
            grant.organization_id,
            end,
        )

    def get_queryset(self, request):
        return super().get_queryset(request).filter(staff=request.user)

    def has_module_permission(self, request):
        return _may_use_support(request.user)

    def has_view_permission(self, request, obj=None):
        return _may_use_support(request.user) and (obj is None or obj.staff_id == request.user.pk)

    def get_urls(self):
        own = [
            path(
                "request/",
                self.admin_site.admin_view(self.request_view),
                name="accounts_supportgrant_request",
            ),
            path(
                "emergency/",
                self.admin_site.admin_view(self.emergency_view),
                name="accounts_supportgrant_emergency",
            ),
            path(
                "<int:pk>/end/",
                self.admin_site.admin_view(self.end_view),
                name="accounts_supportgrant_end",
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_request": request.user.has_perm(support.REQUEST_PERMISSION),
            "may_emergency": request.user.has_perm(support.EMERGENCY_PERMISSION),
        }
        return super().changelist_view(request, extra_context)

    def _form_view(self, request, *, emergency: bool):
        permission = support.EMERGENCY_PERMISSION if emergency else support.REQUEST_PERMISSION
        if not (request.user.is_staff and request.user.has_perm(permission)):
            raise PermissionDenied(
                "Emergency access needs the 'emergency support access' permission."
                if emergency
                else "Asking for support access needs the 'request support access' permission."
            )
        max_hours = (
            support._emergency_max_hours() if emergency else int(settings.SUPPORT_GRANT_MAX_HOURS)
        )
        initial: dict[str, object] = {"hours": max_hours if emergency else min(24, max_hours)}
        if request.GET.get("organization"):
            initial["organization"] = _org_id(request.GET["organization"])
        form = GrantRequestForm(request.POST or None, initial=initial, max_hours=max_hours)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            service = support.grant_emergency if emergency else support.grant_request
            try:
                grant = service(
                    organization=data["organization"],
                    staff=request.user,
                    reason=data["reason"],
                    hours=data["hours"],
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if emergency:
                    self.message_user(
                        request,
                        f"Emergency access to {grant.organization.name} is open until "
                        f"{support.when_text(grant.expires_at)}; its owners have been emailed.",
                        messages.WARNING,
                    )
                else:
                    self.message_user(
                        request,
                        f"Asked {grant.organization.name}'s owners for {grant.hours} hours of "
                        "access; it opens when an owner approves.",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(reverse("admin:accounts_supportgrant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Emergency support access" if emergency else "Ask for support access",
            "opts": self.model._meta,
            "form": form,
            "emergency": emergency,
            "max_hours": max_hours,
        }
        return TemplateResponse(request, "admin/backoffice/support_request.html", context)

    def request_view(self, request):
        return self._form_view(request, emergency=False)

    def emergency_view(self, request):
        return self._form_view(request, emergency=True)

    def end_view(self, request, pk: int):
        grant = get_object_or_404(
            SupportGrant.objects.unscoped().select_related("organization"),
            pk=pk,
            staff=request.user,
        )
        if request.method == "POST":
            try:
                support.grant_revoke(grant=grant, actor=request.user, request=request)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Your access to {grant.organization.name} has ended.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:accounts_supportgrant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "End support access",
            "opts": self.model._meta,
            "grant": grant,
        }
        return TemplateResponse(request, "admin/backoffice/support_end.html", context)


admin.site.register(SupportGrant, SupportGrantAdmin)
