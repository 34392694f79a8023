"""api_surveys (a helper writes it)."""

urlpatterns: list = []
