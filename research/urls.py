"""Site URLs of research (mounted at /research/, namespace `research`): the
overview, themes and feedback (views.py) and surveys (urls_surveys.py)."""

from django.urls import path

from . import views
from .urls_surveys import urlpatterns as survey_urls

urlpatterns = [
    path("", views.overview, name="overview"),
    *survey_urls,
]
