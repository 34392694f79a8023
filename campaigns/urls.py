"""Site URLs of campaigns (mounted at /campaigns/, namespace `campaigns`): the
campaign pages, plus the development outbox (`campaigns:outbox`,
`campaigns:outbox_message`)."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("settings/", views.campaign_settings, name="settings"),
    path("new/", views.campaign_new, name="new"),
    path("sms-length/", views.sms_count, name="sms_count"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/delete/", views.campaign_delete, name="delete"),
    path("<int:pk>/variants/", views.variant_add, name="variant_add"),
    path("versions/<int:pk>/", views.variant_edit, name="variant_edit"),
    path("<int:pk>/preview/", views.campaign_preview, name="preview"),
    path("<int:pk>/test/", views.campaign_test, name="test"),
    path("<int:pk>/send/", views.campaign_send, name="send"),
    path("", include("campaigns.outbox_urls")),
]
