from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customer data"

    def ready(self):
        from core.capabilities import Capability, NavEntry, register_capability

        register_capability(
            Capability(
                name="customers",
                nav=(NavEntry("customers:list", "Customers", 20),),
                site_urls="customers.urls",
                site_prefix="customers/",
                site_namespace="customers",
                api_urls="customers.api.urls",
                world="customers.tests.factories",
            )
        )
