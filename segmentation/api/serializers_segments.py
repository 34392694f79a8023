"""API shapes of segments and personas (CONTRACT.md: `segments/`, `personas/`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Persona, Segment


class PersonaSerializer(serializers.ModelSerializer):
    segment = serializers.SerializerMethodField()

    class Meta:
        model = Persona
        fields = [
            "id",
            "segment",
            "name",
            "summary",
            "traits",
            "motivations",
            "preferred_channel",
            "preferred_time",
            "favourite_categories",
            "favourite_products",
            "value",
            "value_level",
            "risk",
            "risk_level",
            "actions",
            "human_edited_fields",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "kind": {"type": "string"},
            },
        }
    )
    def get_segment(self, obj: Persona) -> dict:
        return {"id": obj.segment_id, "name": obj.segment.name, "kind": obj.segment.kind}


class PersonaInlineSerializer(serializers.ModelSerializer):
    """The persona inside a segment."""

    class Meta:
        model = Persona
        fields = [
            "id",
            "name",
            "summary",
            "traits",
            "motivations",
            "preferred_channel",
            "preferred_time",
            "favourite_categories",
            "favourite_products",
            "value",
            "value_level",
            "risk",
            "risk_level",
            "actions",
            "human_edited_fields",
        ]
        read_only_fields = fields


class PersonaUpdateSerializer(serializers.Serializer):
    """A PATCH: any editable field; `reset_fields` returns fields to the machine text."""

    name = serializers.CharField(required=False, max_length=120)
    summary = serializers.CharField(required=False, allow_blank=True)
    traits = serializers.ListField(child=serializers.CharField(), required=False)
    motivations = serializers.ListField(child=serializers.CharField(), required=False)
    preferred_channel = serializers.CharField(required=False, allow_blank=True, max_length=120)
    preferred_time = serializers.CharField(required=False, allow_blank=True, max_length=120)
    favourite_categories = serializers.ListField(child=serializers.CharField(), required=False)
    favourite_products = serializers.ListField(child=serializers.CharField(), required=False)
    value = serializers.CharField(required=False, allow_blank=True)
    risk = serializers.CharField(required=False, allow_blank=True)
    actions = serializers.ListField(child=serializers.CharField(), required=False)
    reset_fields = serializers.ListField(
        child=serializers.ChoiceField(choices=Persona.EDITABLE_FIELDS), required=False
    )

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {name: "This field cannot be edited." for name in sorted(unknown)}
            )
        return attrs


class SegmentSerializer(serializers.ModelSerializer):
    persona = serializers.SerializerMethodField()
    rule = serializers.SerializerMethodField()
    parent_id = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The segment this sub-segment was found in (drill-down); null for top-level "
        "segments, RFM groups and rules.",
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "kind",
            "key",
            "parent_id",
            "description",
            "size",
            "revenue_share",
            "is_active",
            "profile",
            "persona",
            "rule",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PersonaInlineSerializer(allow_null=True))
    def get_persona(self, obj: Segment):
        persona = obj.persona
        return PersonaInlineSerializer(persona).data if persona is not None else None

    @extend_schema_field({"type": "object", "nullable": True})
    def get_rule(self, obj: Segment):
        return obj.rule if obj.kind == "rule" else None


class SegmentListSerializer(SegmentSerializer):
    """Lists leave out the per-feature detail of profiles (kept on the detail)."""

    profile = serializers.SerializerMethodField()

    @extend_schema_field({"type": "object"})
    def get_profile(self, obj: Segment) -> dict:
        profile = obj.profile or {}
        keep = (
            "size",
            "share_of_customers",
            "share_of_revenue",
            "revenue",
            "value_index",
            "sentences",
            "top_categories",
            "channels",
            "favourite_weekday",
            "favourite_hour",
        )
        return {k: profile[k] for k in keep if k in profile}


class MemberSerializer(serializers.Serializer):
    """A member with what an integration needs to decide whom to sync: the
    customer's consent (see Consent in docs/contract.md) and when they changed."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    email = serializers.CharField()
    name = serializers.SerializerMethodField()
    accepts_email = serializers.BooleanField()
    accepts_sms = serializers.BooleanField()
    email_consent_at = serializers.DateTimeField(allow_null=True)
    sms_consent_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()

    def get_name(self, obj) -> str:
        return obj.full_name


class MembersRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    as_of = serializers.DateField()
    created_at = serializers.DateTimeField()


class MembersPageSerializer(serializers.Serializer):
    """A page of members, with the segmentation run they come from (null for a rule
    segment, evaluated on the current data): when `run.id` changes between pages,
    a new run was published during the read; start again."""

    count = serializers.IntegerField(required=False)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    run = MembersRunSerializer(allow_null=True)
    results = MemberSerializer(many=True)


class RuleSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True)
    rule = serializers.JSONField()
