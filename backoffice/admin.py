"""Back office views for the fleet: organisations with usage and limits, suspension
and scheduled deletion, failing jobs with re-run, and the platform's health.

Where they live: the organisations overview and actions on `OrganizationAdmin`
(accounts/admin.py), failing jobs and health on `JobAdmin` (core/admin.py), both
routing to backoffice/views.py; figures in backoffice/usage.py and
backoffice/health.py; the index's "Platform" panel in
templates/admin/index.html. Here: the API usage counter, read-only."""

from django.contrib import admin

from accounts.models import ApiUsage
from core.admin import ReadOnlyAdminMixin


@admin.register(ApiUsage)
class ApiUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "organization", "requests"]
    list_filter = ["organization"]
    date_hierarchy = "day"
    ordering = ["-day"]
    readonly_fields = ["organization", "day", "requests"]
