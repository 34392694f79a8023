"""Survey links answered without an account (mounted at /r/ in config/urls.py):
each takes a signed value, never an object id (research/links.py)."""

app_name = "research_public"

urlpatterns: list = []
