"""Survey site pages (helper H3 writes them), mounted under /research/."""

urlpatterns: list = []
