"""Site URLs of segments and personas (mounted at /segments/, namespace `segmentation`)."""

from django.urls import path

from . import views_segments as views

urlpatterns = [
    path("", views.segments, name="segments"),
    path("run/", views.run, name="run"),
    path("settings/", views.settings_update, name="segments_settings"),
    path("<int:pk>/", views.segment_detail, name="segment_detail"),
    path("<int:pk>/export/", views.segment_members_export, name="segment_members_export"),
    path("personas/", views.personas, name="personas"),
    path("personas/<int:pk>/", views.persona_card, name="persona_card"),
    path("personas/<int:pk>/edit/", views.persona_edit, name="persona_edit"),
    path("rules/new/", views.rule_new, name="rule_new"),
    path("rules/preview/", views.rule_preview, name="rule_preview"),
    path("rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
]
