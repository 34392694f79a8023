from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = "Stores"

    def ready(self):
        from core.capabilities import Capability, register_capability

        register_capability(
            Capability(
                name="stores",
                # no navigation entry: the Settings page links to the stores page
                site_urls="stores.urls",
                site_prefix="stores/",
                site_namespace="stores",
                api_urls="stores.api",
                world="stores.tests.factories",
            )
        )
