from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The platform staff's back office: Django's admin with custom views for the
    fleet (usage and limits, suspension, failing jobs, health) and for consented,
    audited support access. No site pages, API or pipeline step of its own."""

    name = "backoffice"
    verbose_name = "Back office"

    def ready(self):
        from . import admin, groups, support_admin  # noqa: F401  (register views, groups)
