"""Site URLs of research (mounted at /research/, namespace `research`): the
overview, themes and feedback (views.py) and surveys (urls_surveys.py)."""

from django.urls import path

from . import views
from .urls_surveys import urlpatterns as survey_urls

urlpatterns = [
    path("", views.overview, name="overview"),
    path("themes/<int:pk>/", views.theme_detail, name="theme"),
    path("feedback/", views.feedback_list, name="feedback"),
    path("run/", views.run, name="run"),
    *survey_urls,
]
