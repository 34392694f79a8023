"""Site URLs of offers (mounted at /offers/, namespace `offers`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.offer_list, name="list"),
    path("new/", views.offer_new, name="new"),
    path("<int:pk>/", views.offer_detail, name="detail"),
    path("<int:pk>/edit/", views.offer_edit, name="edit"),
    path("<int:pk>/delete/", views.offer_delete, name="delete"),
    path("<int:pk>/rebuild/", views.offer_rebuild, name="rebuild"),
    path("<int:pk>/fairness-override/", views.offer_override, name="override"),
    path("<int:pk>/codes.csv", views.offer_codes_download, name="codes_download"),
]
