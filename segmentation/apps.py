from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segments and personas"

    def ready(self):
        # Everything segments and personas add to the rest of the site, declared
        # once each (see core/capabilities.py). The pipeline, the pages, the routers
        # and the isolation sweep find them here.
        from core.capabilities import (
            Capability,
            CustomerFilter,
            NavEntry,
            Panel,
            Step,
            register_capability,
        )

        register_capability(
            Capability(
                name="segments",
                steps=(
                    Step(
                        "segments", "segmentation.tasks_segments.segments_run", 20, "Segmentation"
                    ),
                ),
                customer_panels=(
                    Panel("segment", "segmentation.selectors:customer_segment_panel", "Segment"),
                ),
                customer_enrichers=("segmentation.selectors:segments_for_customers",),
                customer_filters=(
                    CustomerFilter(
                        "segment", "segmentation.selectors:customers_in_segment", "Segment"
                    ),
                ),
                erasure_handlers=("segmentation.selectors:erase_memberships",),
                nav=(
                    NavEntry("segmentation:segments", "Segments", 30),
                    NavEntry("segmentation:personas", "Personas", 40),
                ),
                site_urls="segmentation.urls_segments",
                site_prefix="segments/",
                site_namespace="segmentation",
                api_urls="segmentation.api.segments",
                world="segmentation.tests.factories",
            )
        )
        # Every process (site, worker, command) must know the step tasks; Celery's
        # autodiscovery only imports `tasks` modules.
        from . import tasks_segments  # noqa: F401
