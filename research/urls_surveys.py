"""Survey site pages (views_surveys.py), mounted under /research/ (namespace `research`)."""

from django.urls import path

from . import views_surveys as views

urlpatterns = [
    path("surveys/", views.survey_list, name="surveys"),
    path("surveys/new/", views.survey_new, name="survey_new"),
    path("surveys/<int:pk>/", views.survey_detail, name="survey_detail"),
    path("surveys/<int:pk>/edit/", views.survey_edit, name="survey_edit"),
    path("surveys/<int:pk>/answers.csv", views.survey_export, name="survey_export"),
    path("surveys/<int:pk>/close/", views.survey_close, name="survey_close"),
]
