from django.urls import path

from core import views as core_views

app_name = "segmentation"

urlpatterns = [
    path("", core_views.placeholder, {"section": "segments"}, name="segments"),
    path("personas/", core_views.placeholder, {"section": "personas"}, name="personas"),
    path("predictions/", core_views.placeholder, {"section": "predictions"}, name="predictions"),
]
