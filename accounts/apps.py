from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organisations"

    def ready(self):
        from core.capabilities import Capability, NavEntry, register_capability

        from . import rls, signals  # noqa: F401  (connect the RLS wrapper and post-migrate policies)

        register_capability(
            Capability(
                name="accounts",
                nav=(NavEntry("accounts:settings", "Settings", 90),),
                site_urls="accounts.urls",
                site_prefix="accounts/",
                site_namespace="accounts",
                api_urls="accounts.api.urls",
                world="accounts.tests.factories",
            )
        )
