"""Site URLs of recommendations (mounted at /recommendations/, namespace
`recommendations`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("run/", views.run_now, name="run"),
    path("settings/", views.settings_update, name="settings"),
]
