"""Base API views: every queryset starts from the current organisation (STYLE rule 8)."""

from rest_framework import viewsets


class TenantViewSetMixin:
    """Subclasses set `model` and may narrow `get_base_queryset`, never replace the scope."""

    model = None

    def get_base_queryset(self):
        return self.model.objects.all()  # the scoped manager: current organisation only

    def get_queryset(self):
        return self.get_base_queryset()


class TenantReadOnlyViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    pass
