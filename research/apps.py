from django.apps import AppConfig


class ResearchConfig(AppConfig):
    """Market research (issue 13): feedback analysis, surveys and trends, per segment."""

    name = "research"
    verbose_name = "Research"

    def ready(self):
        # Everything research adds to the rest of the site, declared once
        # (core/capabilities.py).
        from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

        register_capability(
            Capability(
                name="research",
                # sentiment, themes, trends and "what changed" after each import and nightly
                steps=(Step("research", "research.tasks.research_run", 80, "Research"),),
                customer_panels=(
                    Panel(
                        "feedback", "research.selectors:customer_panel", "What they told you", 85
                    ),
                ),
                segment_panels=(
                    Panel(
                        "voice",
                        "research.selectors:segment_panel",
                        "What they praise and complain about",
                        40,
                    ),
                ),
                persona_notes=("research.persona_notes:persona_notes",),
                dashboard_panels=(
                    Panel(
                        "changes", "research.changes:dashboard_panel", "What changed this month", 10
                    ),
                ),
                erasure_handlers=(
                    "research.selectors:erase_customers",
                    "research.surveys:erase_customers",
                ),
                person_exports=(
                    "research.selectors:person_export",
                    "research.surveys:person_export",
                ),
                org_exports=("research.selectors:org_export", "research.surveys:org_export"),
                nav=(NavEntry("research:overview", "Research", 80),),
                site_urls="research.urls",
                site_prefix="research/",
                site_namespace="research",
                api_urls="research.api",
                world="research.tests.factories",
            )
        )
        from . import tasks  # noqa: F401  (workers must know the step task)
