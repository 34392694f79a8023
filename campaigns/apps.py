from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Campaigns: built in a later issue. The app exists so navigation and the
    contract have their place."""

    name = "campaigns"
