from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        # Outbound change notifications, declared once (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, register_capability

        register_capability(
            Capability(
                name="webhooks",
                nav=(NavEntry("webhooks:list", "Webhooks", 85),),
                site_urls="webhooks.urls",
                site_prefix="settings/webhooks/",
                site_namespace="webhooks",
                api_urls="webhooks.api.urls",
                world="webhooks.tests.factories",
            )
        )
        # Every process (site, worker, command) must know the delivery task.
        # Deliveries held while the organisation was suspended go on its reactivation.
        from . import (
            receivers,  # noqa: F401
            tasks,  # noqa: F401
        )
