"""Base API views: every queryset starts from the current organisation (STYLE rule 8)."""

from rest_framework import viewsets


class TenantViewSetMixin:
    """Subclasses set `model` and may narrow `get_base_queryset`, never replace the scope.

    `list_params`, when set, names the query parameters the list understands
    (besides pages): any other answers 400 (core.api.params.check_list_params)."""

    model = None
    list_params: tuple[str, ...] | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.list_params is not None and getattr(self, "action", None) == "list":
            from .params import check_list_params

            check_list_params(request.query_params, self.list_params)

    def get_base_queryset(self):
        return self.model.objects.all()  # the scoped manager: current organisation only

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation runs outside any organisation; it needs only the
            # model, so give it an empty queryset instead of a TenantNotSet.
            return self.model._default_manager.none()
        return self.get_base_queryset()


class TenantReadOnlyViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    pass
