from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self):
        # Everything recommendations add to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="recommendations",
                steps=(
                    Step(
                        "recommendations",
                        "recommendations.tasks.recommendations_run",
                        40,
                        "Recommendations",
                    ),
                ),
                customer_panels=(
                    Panel(
                        "recommendations",
                        "recommendations.selectors:customer_panel",
                        "Recommended products",
                    ),
                ),
                product_panels=(
                    Panel(
                        "bought_together",
                        "recommendations.selectors:product_panel",
                        "Bought together",
                        order=120,
                    ),
                ),
                erasure_handlers=("recommendations.selectors:erase_customers",),
                person_exports=("recommendations.selectors:person_export",),
                org_exports=("recommendations.selectors:org_export",),
                nav=(NavEntry("recommendations:overview", "Recommendations", 52),),
                site_urls="recommendations.urls",
                site_prefix="recommendations/",
                site_namespace="recommendations",
                api_urls="recommendations.api",
                world="recommendations.tests.factories",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the step's task)
