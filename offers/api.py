"""API routes (skeleton; filled in by the app's API module)."""

urlpatterns: list = []
