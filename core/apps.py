from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Platform"

    def ready(self):
        from core.capabilities import Capability, NavEntry, register_capability

        register_capability(
            Capability(
                name="core",
                nav=(NavEntry("core:dashboard", "Dashboard", 10),),
                site_urls="core.urls",
                site_prefix="",
                site_namespace="core",
                api_urls="core.api.urls",
                world="core.tests.factories",
            )
        )
