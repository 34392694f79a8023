"""api_feedback (a helper writes it)."""

urlpatterns: list = []
