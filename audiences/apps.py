from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences"

    def ready(self):
        # Everything audiences add to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="audiences",
                steps=(Step("audiences", "audiences.tasks.audiences_refresh", 60, "Audiences"),),
                erasure_handlers=("audiences.selectors:erase_customers",),
                person_exports=("audiences.selectors:person_export",),
                org_exports=("audiences.selectors:org_export",),
                nav=(NavEntry("audiences:list", "Audiences", 55),),
                segment_panels=(
                    Panel("best_channel", "audiences.channels:segment_panel", "Best channel"),
                ),
                site_urls="audiences.urls",
                site_prefix="audiences/",
                site_namespace="audiences",
                api_urls="audiences.api",
                world="audiences.tests.factories",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the step's task)
