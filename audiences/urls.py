from django.urls import path

from . import views

urlpatterns = [
    path("", views.audience_list, name="list"),
]
