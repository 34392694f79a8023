"""Survey links answered without an account (mounted at /r/ in config/urls.py):
each takes a signed value, never an object id (research/links.py)."""

from django.urls import path

from . import public_views

app_name = "research_public"

urlpatterns = [
    path("s/<str:token>/", public_views.answer, name="answer"),
]
