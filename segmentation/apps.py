from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segments, personas and predictions"

    def ready(self):
        # Every process (site, worker, command) must know the step tasks and the
        # hooks that put segments and predictions on customer pages, into the
        # customers API and into erasure; Celery's autodiscovery only imports
        # `tasks` modules, and the hooks would otherwise load with the URLconf.
        from . import (  # noqa: F401
            selectors,
            selectors_predictions,
            tasks_predictions,
            tasks_segments,
        )
