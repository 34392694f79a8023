"""Site URLs of audiences (mounted at /audiences/, namespace `audiences`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.audience_list, name="list"),
    path("new/", views.audience_new, name="new"),
    path("preview/", views.audience_preview, name="preview"),
    path("preview/<int:job_id>/", views.audience_preview_job, name="preview_job"),
    path("<int:pk>/", views.audience_detail, name="detail"),
    path("<int:pk>/edit/", views.audience_edit, name="edit"),
    path("<int:pk>/delete/", views.audience_delete, name="delete"),
    path("<int:pk>/export/", views.audience_export, name="export"),
    path("<int:pk>/rebuild/", views.audience_rebuild, name="rebuild"),
]
