"""Site URLs of the development outbox (mounted at /campaigns/, namespace
`campaigns`): `campaigns:outbox` and `campaigns:outbox_message`."""

from django.urls import path

from . import outbox_views

urlpatterns = [
    path("outbox/", outbox_views.outbox, name="outbox"),
    path("outbox/<int:pk>/", outbox_views.outbox_message, name="outbox_message"),
]
