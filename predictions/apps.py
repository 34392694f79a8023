from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self):
        # Everything predictions add to the rest of the site, declared once (see
        # core/capabilities.py). The URLs keep their place under /segments/ and the
        # `segmentation` namespace, so links and bookmarks made before still work.
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="predictions",
                steps=(
                    Step(
                        "predictions",
                        "predictions.tasks.predictions_run",
                        30,
                        "Predictions",
                    ),
                ),
                rule_fields="predictions.services:prediction_rule_fields",
                customer_panels=(
                    Panel(
                        "predictions",
                        "predictions.selectors:customer_panel",
                        "Predictions",
                    ),
                ),
                product_panels=(
                    Panel(
                        "demand",
                        "predictions.selectors:product_panel",
                        "Demand forecast",
                    ),
                ),
                customer_enrichers=("predictions.selectors:predictions_for_customers",),
                erasure_handlers=("predictions.selectors:erase_customers",),
                nav=(NavEntry("segmentation:predictions", "Predictions", 50),),
                site_urls="predictions.urls",
                site_prefix="segments/",
                site_namespace="segmentation",
                api_urls="predictions.api.views",
                world="predictions.tests.factories",
            )
        )
        # Every process (site, worker, command) must know the step's tasks.
        from . import tasks  # noqa: F401
