"""Back office for segments and personas (platform staff; the middleware runs
/admin/ inside the escape hatch, and the default managers are the plain ones).
Segment members are per customer: they open only through a support grant
(`SupportGatedAdmin`, backoffice/support_admin.py)."""

from django.contrib import admin

from backoffice.support_admin import SupportGatedAdmin

from .models import Persona, Segment, SegmentationRun, SegmentationSettings, SegmentMembership


@admin.register(SegmentationSettings)
class SegmentationSettingsAdmin(admin.ModelAdmin):
    list_display = ["organization", "k_min", "k_max", "min_segment_size", "min_segment_share"]
    list_filter = ["organization"]


@admin.register(SegmentationRun)
class SegmentationRunAdmin(admin.ModelAdmin):
    list_display = [
        "id", "organization", "as_of", "status", "chosen_k", "n_customers", "is_live",
        "seconds", "created_at",
    ]  # fmt: skip
    list_filter = ["organization", "is_live", "status"]
    readonly_fields = [f.name for f in SegmentationRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "kind", "name", "key", "size", "is_active", "updated_at"]
    list_filter = ["organization", "kind", "is_active"]
    search_fields = ["name", "key", "organization__name"]
    readonly_fields = ["first_run", "last_run", "created_by"]


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(SupportGatedAdmin):
    """Who is in which segment: per customer, so behind a support grant."""

    list_display = ["id", "organization", "run", "segment", "customer_id"]
    list_filter = ["organization"]
    list_select_related = ["organization", "run", "segment"]


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "name", "segment", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__name"]
    raw_id_fields = ["segment", "updated_by"]
