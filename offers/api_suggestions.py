"""`offers/suggestions/` (skeleton)."""

urlpatterns: list = []
