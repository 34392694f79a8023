"""API routes of segmentation, assembled from one module per capability."""

urlpatterns: list = []
try:
    from .segments import urlpatterns as _segments

    urlpatterns += _segments
except ModuleNotFoundError:
    pass
try:
    from .predictions import urlpatterns as _predictions

    urlpatterns += _predictions
except ModuleNotFoundError:
    pass
