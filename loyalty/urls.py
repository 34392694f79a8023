from django.urls import path

from . import views

urlpatterns = [
    path("", views.loyalty_page, name="page"),
]
