from django.apps import AppConfig


class OffersConfig(AppConfig):
    """Offers (issue 12): targeted codes with hold-outs, fairness flags and results."""

    name = "offers"
    verbose_name = "Offers"

    def ready(self):
        # Everything offers add to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="offers",
                # redemptions are re-derived from the orders after each import and nightly
                steps=(Step("offers", "offers.tasks.offers_refresh", 65, "Offer redemptions"),),
                customer_panels=(Panel("offers", "offers.selectors:customer_panel", "Offers", 75),),
                erasure_handlers=("offers.selectors:erase_customers",),
                person_exports=("offers.selectors:person_export",),
                org_exports=("offers.selectors:org_export",),
                nav=(NavEntry("offers:list", "Offers", 72),),
                site_urls="offers.urls",
                site_prefix="offers/",
                site_namespace="offers",
                api_urls="offers.api",
                world="offers.tests.factories",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the build and step tasks)
