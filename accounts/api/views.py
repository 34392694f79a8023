from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class OrganizationView(APIView):
    """The organisation the key or session acts for."""

    @extend_schema(
        summary="The organisation of this key",
        responses=inline_serializer(
            "Organization",
            {
                "id": serializers.IntegerField(),
                "name": serializers.CharField(),
                "slug": serializers.CharField(),
                "time_zone": serializers.CharField(),
                "currency": serializers.CharField(),
                "sensitive_attributes": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def get(self, request):
        org = request.organization
        return Response(
            {
                "id": org.pk,
                "name": org.name,
                "slug": org.slug,
                "time_zone": org.time_zone,
                "currency": org.currency,
                "sensitive_attributes": org.sensitive_attributes,
            }
        )
