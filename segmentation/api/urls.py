"""API routes of segmentation, assembled from one module per capability."""

from .predictions import urlpatterns as _predictions
from .segments import urlpatterns as _segments

urlpatterns = [*_segments, *_predictions]
