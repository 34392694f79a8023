"""The addresses in messages, reached by recipients without an account (mounted at
/m/ in config/urls.py, outside the organisation's site pages). Each takes a signed
value, never an object id: see campaigns/links.py."""

from django.urls import path

from . import public_views

app_name = "campaigns_public"

urlpatterns = [
    path("u/<str:token>/", public_views.unsubscribe, name="unsubscribe"),
    path("p/<str:token>/", public_views.preferences, name="preferences"),
    path("o/<str:token>/", public_views.open_pixel, name="open"),
    path("c/<str:token>/", public_views.click, name="click"),
]
