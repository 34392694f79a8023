"""Site URLs of segmentation, assembled from one module per capability."""

from django.urls import path

from core import views as core_views

app_name = "segmentation"

try:
    from .urls_segments import urlpatterns as _segments
except ModuleNotFoundError:
    _segments = [
        path("", core_views.placeholder, {"section": "segments"}, name="segments"),
        path("personas/", core_views.placeholder, {"section": "personas"}, name="personas"),
    ]
try:
    from .urls_predictions import urlpatterns as _predictions
except ModuleNotFoundError:
    _predictions = [
        path("predictions/", core_views.placeholder, {"section": "predictions"}, name="predictions")
    ]

urlpatterns = [*_segments, *_predictions]
