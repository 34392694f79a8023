"""Site URLs of loyalty (mounted at /loyalty/, namespace `loyalty`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.loyalty_page, name="page"),
    path("program/", views.program_edit, name="program"),
    path("recompute/", views.recompute, name="recompute"),
    path("tiers/<int:pk>/audience/", views.tier_audience, name="tier_audience"),
    path("customers/<int:pk>/exchange/", views.points_exchange, name="exchange"),
]
