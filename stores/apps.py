from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = "Stores"

    def ready(self):
        from core.capabilities import Capability, register_capability

        register_capability(
            Capability(
                name="stores",
                api_urls="stores.api",
                world="stores.tests.factories",
            )
        )
