from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "kind", "status", "progress", "created_at", "finished_at"]
    list_filter = ["organization", "kind", "status"]
    search_fields = ["kind", "title", "message", "organization__name"]
    readonly_fields = [f.name for f in Job._meta.fields if f.name != "cancel_requested"]
