"""Site URLs of campaigns (mounted at /campaigns/, namespace `campaigns`): the
campaign pages, plus the development outbox (`campaigns:outbox`,
`campaigns:outbox_message`)."""

from django.urls import include, path

from . import views, views_automations

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("settings/", views.campaign_settings, name="settings"),
    path("new/", views.campaign_new, name="new"),
    path("sms-length/", views.sms_count, name="sms_count"),
    path("automations/", views_automations.automation_list, name="automations"),
    path("automations/new/", views_automations.automation_new, name="automation_new"),
    path("automations/<int:pk>/", views_automations.automation_detail, name="automation_detail"),
    path("automations/<int:pk>/edit/", views_automations.automation_edit, name="automation_edit"),
    path(
        "automations/<int:pk>/delete/",
        views_automations.automation_delete,
        name="automation_delete",
    ),
    path(
        "automations/<int:pk>/toggle/",
        views_automations.automation_toggle,
        name="automation_toggle",
    ),
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
