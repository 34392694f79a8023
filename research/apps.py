from django.apps import AppConfig


class ResearchConfig(AppConfig):
    """Market research from surveys and feedback: built in a later issue."""

    name = "research"
