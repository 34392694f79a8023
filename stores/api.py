"""Stores through the API (CONTRACT.md, Recommendations and audiences): list, add,
read, change and remove the business's shops. The rules live in `stores.services`,
shared with the site's pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.routers import DefaultRouter

from accounts.actor import Actor
from core.api.base import TenantModelViewSet

from . import services
from .models import Store


class StoreSerializer(serializers.ModelSerializer):
    # The ranges, "both or neither" and "coordinates or a postcode beginning" are
    # checked by stores.services, for the site and the API alike.
    name = serializers.CharField(max_length=200, allow_blank=True, help_text="The store's name.")
    address = serializers.CharField(
        max_length=500, allow_blank=True, required=False, help_text="Its address, for people."
    )
    latitude = serializers.FloatField(
        allow_null=True, required=False, help_text="-90 to 90; give it with the longitude."
    )
    longitude = serializers.FloatField(
        allow_null=True, required=False, help_text="-180 to 180; give it with the latitude."
    )
    postal_prefixes = serializers.ListField(
        child=serializers.CharField(max_length=40, allow_blank=True),
        required=False,
        help_text='Postcode beginnings the store serves ("SW1", "750"); stored upper-case '
        "without spaces. Customers whose postcode starts with one count as near the store. "
        "A store needs coordinates or at least one of these.",
    )

    class Meta:
        model = Store
        fields = [
            "id",
            "name",
            "address",
            "latitude",
            "longitude",
            "postal_prefixes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


@extend_schema_view(
    list=extend_schema(summary="List stores", tags=["stores"]),
    retrieve=extend_schema(summary="One store", tags=["stores"]),
    create=extend_schema(
        summary="Add a store",
        description="A store needs a name and where it is: `latitude` and `longitude` "
        "together, or at least one of `postal_prefixes`, or both. Location audiences "
        "(`audiences/`, kind `location` with `store` and `km`) find the customers near it.",
        tags=["stores"],
    ),
    update=extend_schema(summary="Replace a store", tags=["stores"]),
    partial_update=extend_schema(
        summary="Change a store",
        description="Fields not sent keep their values; the result is checked as a whole.",
        tags=["stores"],
    ),
    destroy=extend_schema(summary="Remove a store", tags=["stores"]),
)
class StoreViewSet(TenantModelViewSet):
    """The business's shops: where it meets its customers."""

    model = Store
    serializer_class = StoreSerializer
    list_params = ()

    def perform_create(self, serializer):
        serializer.instance = services.store_create(
            organization=self.request.organization,
            actor=Actor.from_request(self.request),
            request=self.request,
            **serializer.validated_data,
        )

    def perform_update(self, serializer):
        serializer.instance = services.store_update(
            store=serializer.instance,
            actor=Actor.from_request(self.request),
            request=self.request,
            **serializer.validated_data,
        )

    def perform_destroy(self, instance):
        services.store_delete(
            store=instance, actor=Actor.from_request(self.request), request=self.request
        )


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("stores", StoreViewSet, basename="store")

urlpatterns = router.urls
