from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    """Loyalty (issue 12): tiers, points and rewards."""

    name = "loyalty"
    verbose_name = "Loyalty"

    def ready(self):
        # Everything loyalty adds to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="loyalty",
                steps=(Step("loyalty", "loyalty.tasks.loyalty_refresh", 70, "Loyalty"),),
                rule_fields="loyalty.rules:loyalty_rule_fields",
                customer_panels=(Panel("loyalty", "loyalty.panels:customer_panel", "Loyalty", 70),),
                customer_enrichers=("loyalty.selectors:loyalty_for_customers",),
                erasure_handlers=("loyalty.selectors:erase_customers",),
                person_exports=("loyalty.selectors:person_export",),
                org_exports=("loyalty.selectors:org_export",),
                nav=(NavEntry("loyalty:page", "Loyalty", 74),),
                site_urls="loyalty.urls",
                site_prefix="loyalty/",
                site_namespace="loyalty",
                api_urls="loyalty.api",
                world="loyalty.tests.factories",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the step's task)
