"""Site URLs of segmentation, assembled from one module per capability."""

from .urls_predictions import urlpatterns as _predictions
from .urls_segments import urlpatterns as _segments

app_name = "segmentation"

urlpatterns = [*_segments, *_predictions]
