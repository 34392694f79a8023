"""api_changes (a helper writes it)."""

urlpatterns: list = []
