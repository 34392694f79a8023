from django.urls import path

from core import views as core_views

app_name = "customers"

urlpatterns = [
    path("", core_views.placeholder, {"section": "customers"}, name="list"),
]
