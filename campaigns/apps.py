from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Campaigns (issue 11): personalised, consent-safe email and SMS."""

    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        # Everything campaigns add to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, register_capability

        register_capability(
            Capability(
                name="campaigns",
                nav=(NavEntry("campaigns:list", "Campaigns", 70),),
                erasure_handlers=("campaigns.selectors:erase_customers",),
                person_exports=("campaigns.selectors:person_export",),
                org_exports=("campaigns.selectors:org_export",),
                world="campaigns.tests.factories",
                site_urls="campaigns.urls",
                site_prefix="campaigns/",
                site_namespace="campaigns",
                api_urls="campaigns.api",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the send job's task)
