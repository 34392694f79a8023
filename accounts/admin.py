"""Back office for platform staff. Tenant rows are listed across organisations
(the middleware runs /admin/ inside the escape hatch for staff) and filterable by
organisation."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.urls import path, reverse

from backoffice.services import staff_audit_log
from backoffice.usage import (
    duration_text,
    organization_files,
    organizations_with_usage,
    usage_against_limits,
    usage_totals,
)
from core.admin import ReadOnlyAdminMixin
from core.formats import size_text

from .limits import LABELS, Limits, default_limits
from .models import (
    ApiKey,
    AuditLogEntry,
    Invitation,
    Membership,
    Organization,
    OrganizationLimits,
    User,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


def membership_audit(request, membership: Membership, *, removed: bool = False, was: str = ""):
    """A membership staff added, changed or removed in the back office, written to
    the organisation's audit log (its owners see who joined through Segmenta)."""
    if removed:
        action, details = "member_removed", {"role": membership.role}
    elif was and was != membership.role:
        action, details = "role_changed", {"from": was, "to": membership.role}
    elif was:
        return
    else:
        action, details = "member_joined", {"role": membership.role}
    staff_audit_log(
        organization=membership.organization,
        action=action,
        staff=request.user,
        target=membership.user.email,
        details={**details, "by": "the back office"},
        request=request,
    )


def save_membership_formset(request, formset) -> None:
    """Save a memberships inline, auditing each change (see membership_audit)."""
    before = {
        f.instance.pk: f.initial.get("role", "")
        for f in formset.initial_forms
        if f.instance.pk is not None
    }
    instances = formset.save(commit=False)
    for membership in formset.deleted_objects:
        membership_audit(request, membership, removed=True)
        membership.delete()
    for membership in instances:
        was = before.get(membership.pk, "")
        membership.save()
        membership_audit(request, membership, was=was)
    formset.save_m2m()


class OrganizationLimitsForm(forms.ModelForm):
    """Blank fields keep the platform's default, shown as the placeholder."""

    class Meta:
        model = OrganizationLimits
        fields = Limits.names()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        defaults = default_limits()
        for name in Limits.names():
            field = self.fields[name]
            field.widget.attrs["placeholder"] = f"{getattr(defaults, name)}"
            field.help_text = (
                f"{field.help_text} Blank: the platform default, {defaults.text(name)}."
            )


class OrganizationLimitsInline(admin.StackedInline):
    """The organisation's own limits (blank = the platform default). Editing needs
    `accounts.change_organizationlimits`; every change is written to the
    organisation's audit log (OrganizationAdmin.save_formset)."""

    model = OrganizationLimits
    form = OrganizationLimitsForm
    can_delete = False
    max_num = 1
    min_num = 0
    extra = 1
    verbose_name = "limits"
    verbose_name_plural = "limits (blank = platform default)"

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("accounts.change_organizationlimits")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("accounts.change_organizationlimits")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("accounts.view_organizationlimits") or (
            self.has_change_permission(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return False


# Set only through the Suspend / Schedule deletion actions (accounts.suspension).
_STATUS_FIELDS = ["status", "status_reason", "suspended_at", "deletion_scheduled_for"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """The organisations overview: every organisation with its usage (backoffice.usage,
    database-annotated, so each column sorts), platform totals of the filtered list
    above the table, and on the change page usage against limits, the limits, and
    the Suspend / Reactivate / Schedule deletion / Cancel deletion actions."""

    list_display = [
        "name",
        "slug",
        "status_text",
        "customers_col",
        "order_lines_col",
        "files_col",
        "api_calls_col",
        "emails_col",
        "last_sign_in_col",
        "last_import_col",
        "jobs_col",
        "failed_col",
        "job_time_col",
    ]
    search_fields = ["name", "slug"]
    list_filter = ["status", "require_two_factor", "currency"]
    inlines = [OrganizationLimitsInline, MembershipInline]
    change_list_template = "admin/accounts/organization/change_list.html"
    change_form_template = "admin/accounts/organization/change_form.html"

    # --- the list, with usage ---------------------------------------------------

    def get_queryset(self, request):
        return organizations_with_usage(super().get_queryset(request))

    @admin.display(description="Status", ordering="status")
    def status_text(self, obj):
        if obj.deletion_scheduled_for:
            return f"Deletion on {obj.deletion_scheduled_for:%Y-%m-%d}"
        return obj.get_status_display()

    @admin.display(description="Customers", ordering="customers")
    def customers_col(self, obj):
        return f"{obj.customers:,}"

    @admin.display(description="Order lines", ordering="order_lines")
    def order_lines_col(self, obj):
        return f"{obj.order_lines:,}"

    @admin.display(description="Stored files")
    def files_col(self, obj):
        files = organization_files(obj.pk)
        return f"{files.count:,} ({size_text(files.bytes)})" if files.count else "—"

    @admin.display(description="API calls this month", ordering="api_calls_month")
    def api_calls_col(self, obj):
        return f"{obj.api_calls_month:,}"

    @admin.display(description="Emails this month", ordering="emails_month")
    def emails_col(self, obj):
        return f"{obj.emails_month:,}"

    @admin.display(description="Last sign-in", ordering="last_sign_in", empty_value="never")
    def last_sign_in_col(self, obj):
        return obj.last_sign_in

    @admin.display(description="Last import", ordering="last_import", empty_value="never")
    def last_import_col(self, obj):
        return obj.last_import

    @admin.display(description="Jobs (7 days)", ordering="jobs_week")
    def jobs_col(self, obj):
        return f"{obj.jobs_week:,}"

    @admin.display(description="Failed (7 days)", ordering="jobs_failed_week")
    def failed_col(self, obj):
        return f"{obj.jobs_failed_week:,}"

    @admin.display(description="Time in jobs (7 days)", ordering="job_time_week")
    def job_time_col(self, obj):
        return duration_text(obj.job_time_week)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            totals = usage_totals(context["cl"].queryset)
            context["usage_totals"] = totals
            context["usage_totals_time"] = duration_text(totals.job_time_week)
            context["usage_totals_files"] = size_text(totals.files_bytes)
        return response

    # --- the change page ----------------------------------------------------------

    def has_delete_permission(self, request, obj=None):
        # An organisation is deleted only through "Schedule deletion": its owners get
        # an export first and the deletion takes the owners' own path.
        return False

    def has_change_permission(self, request, obj=None):
        # Staff who may only change limits open the page to save the limits inline.
        return super().has_change_permission(request, obj) or request.user.has_perm(
            "accounts.change_organizationlimits"
        )

    def get_readonly_fields(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return [f.name for f in Organization._meta.fields if f.editable]
        return _STATUS_FIELDS

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None:
            user = request.user
            extra_context["usage_lines"] = usage_against_limits(obj)
            extra_context["org_actions"] = org_actions(obj, user)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            return save_membership_formset(request, formset)
        if formset.model is not OrganizationLimits:
            return super().save_formset(request, form, formset, change)
        changes = []
        defaults = default_limits()
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            for name in inline_form.changed_data:
                if name not in Limits.names():
                    continue
                old = inline_form.initial.get(name)
                new = inline_form.cleaned_data.get(name)
                if old == new:
                    continue
                changes.append((name, old, new))
        super().save_formset(request, form, formset, change)
        organization = form.instance
        for name, old, new in changes:
            staff_audit_log(
                organization=organization,
                action="limits_changed",
                staff=request.user,
                target=LABELS[name],
                details={
                    "from": _limit_text(defaults, name, old),
                    "to": _limit_text(defaults, name, new),
                    "limit": name,
                },
                request=request,
            )

    # --- the actions: small form pages ---------------------------------------------

    def get_urls(self):
        from backoffice import views

        wrap = self.admin_site.admin_view
        return [
            *(
                path(
                    f"<path:object_id>/{slug}/",
                    wrap(views.organization_action_view),
                    {"model_admin": self, "action": slug},
                    name=f"accounts_organization_{slug.replace('-', '_')}",
                )
                for slug in views.ORG_ACTIONS
            ),
            *super().get_urls(),
        ]


def _limit_text(defaults: Limits, name: str, value) -> str:
    if value is None:
        return f"default ({defaults.text(name)})"
    shown = Limits(**{**{n: getattr(defaults, n) for n in Limits.names()}, name: value})
    return shown.text(name)


def org_actions(organization, user) -> list[dict]:
    """The action buttons of an organisation's page that `user` may use now."""
    from backoffice.views import ORG_ACTIONS

    return [
        {
            "slug": slug,
            "label": action.label,
            "url": reverse(
                f"admin:accounts_organization_{slug.replace('-', '_')}", args=[organization.pk]
            ),
        }
        for slug, action in ORG_ACTIONS.items()
        if user.has_perm(action.permission) and action.applies(organization)
    ]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "email_verified", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_active", "email_verified", "memberships__organization"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        (
            "Status",
            {
                "fields": (
                    "is_active",
                    "email_verified",
                    "is_staff",
                    "is_superuser",
                    "current_organization",
                )
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            return save_membership_formset(request, formset)
        return super().save_formset(request, form, formset, change)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name"]

    def save_model(self, request, obj, form, change):
        was = form.initial.get("role", "") if change else ""
        super().save_model(request, obj, form, change)
        membership_audit(request, obj, was=was)

    def delete_model(self, request, obj):
        membership_audit(request, obj, removed=True)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "organization"):
            membership_audit(request, membership, removed=True)
        super().delete_queryset(request, queryset)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "organization",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["organization", "role"]
    search_fields = ["email", "organization__name"]
    exclude = ["token_hash"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "organization",
        "scope",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization", "scope"]
    search_fields = ["name", "prefix", "organization__name"]
    exclude = ["key_hash"]  # only the prefix is ever shown
    readonly_fields = ["prefix", "last_used_at"]


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "organization", "action", "actor_label", "target", "ip_address"]
    list_filter = ["organization", "action"]
    search_fields = ["actor_label", "target", "organization__name"]
    readonly_fields = [f.name for f in AuditLogEntry._meta.fields]
