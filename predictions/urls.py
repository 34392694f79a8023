"""Site URLs of predictions (mounted at /segments/, namespace `segmentation`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("predictions/", views.predictions, name="predictions"),
    path("predictions/run/", views.prediction_run, name="prediction_run"),
    path("predictions/settings/", views.prediction_settings, name="prediction_settings"),
    path(
        "predictions/at-risk/segment/",
        views.prediction_at_risk_segment,
        name="prediction_at_risk_segment",
    ),
    path("predictions/customers/", views.prediction_customers, name="prediction_customers"),
    path("predictions/runs/", views.prediction_runs, name="prediction_runs"),
    path("predictions/runs/<int:pk>/", views.prediction_run_detail, name="prediction_run_detail"),
    path("predictions/products/<int:pk>/", views.prediction_product, name="prediction_product"),
    path(
        "predictions/customers/<int:customer_pk>/",
        views.prediction_customer_panel,
        name="prediction_customer_panel",
    ),
]
