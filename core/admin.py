from django.contrib import admin
from django.urls import path

from .models import Job


class ReadOnlyAdminMixin:
    """A back office list or inline that nobody adds to, changes or deletes from
    (counters, audit entries, gated customer data)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "kind", "status", "progress", "created_at", "finished_at"]
    list_filter = ["organization", "kind", "status"]
    search_fields = ["kind", "title", "message", "organization__name"]
    # A job's parameters and result can hold customer values (an import's rejected
    # rows, an export's file name): they open only through support access, so the
    # back office shows which keys they have, not what is in them.
    exclude = ["params", "result"]
    readonly_fields = [
        *(
            f.name
            for f in Job._meta.fields
            if f.name not in ("cancel_requested", "params", "result")
        ),
        "result_keys",
    ]

    def lookup_allowed(self, lookup, value, request=None):
        # No filtering on the hidden fields either: `?result__icontains=…` would tell
        # which jobs hold a value (and, a character at a time, what they hold).
        if lookup.split("__", 1)[0] in self.exclude:
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="result")
    def result_keys(self, obj) -> str:
        keys = sorted((obj.result or {}).keys())
        return ", ".join(keys) + " (values hidden: they may hold customer data)" if keys else "—"

    def get_urls(self):
        """The back office's platform pages (backoffice.views): failing and stuck
        jobs across organisations with re-run, and the platform's health."""
        from backoffice import views

        wrap = self.admin_site.admin_view
        extra = {"model_admin": self}
        return [
            path("failing/", wrap(views.failing_jobs_view), extra, name="core_job_failing"),
            path("health/", wrap(views.health_view), extra, name="core_job_health"),
            path(
                "<path:object_id>/rerun/",
                wrap(views.job_rerun_view),
                extra,
                name="core_job_rerun",
            ),
            *super().get_urls(),
        ]
