from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organisations"

    def ready(self):
        from . import rls, signals  # noqa: F401  (connect the RLS wrapper and post-migrate policies)
