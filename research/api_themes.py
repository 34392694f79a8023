"""api_themes (a helper writes it)."""

urlpatterns: list = []
