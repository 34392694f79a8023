from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.exceptions import ApplicationError

from .. import fields as customer_fields
from ..models import (
    ConsentChange,
    Customer,
    Event,
    Import,
    ImportKind,
    Order,
    OrderLine,
    Product,
)
from ..services.imports import file_limits

# The customer fields (customers/fields.py): those a person may not change are
# read-only; text a person may change may be cleared with null.
CUSTOMER_READ_ONLY = ["id", *customer_fields.names(api=True, editable=False)]
NULLABLE_TEXT = list(customer_fields.text_max_lengths(customer_fields.select(editable=True)))


class SegmentRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class PredictionsSerializer(serializers.Serializer):
    p_alive = serializers.FloatField(allow_null=True)
    expected_orders_90d = serializers.FloatField(allow_null=True)
    predicted_clv_365d = serializers.FloatField(allow_null=True)
    expected_next_order_at = serializers.DateField(allow_null=True)
    churn_risk = serializers.ChoiceField(choices=["low", "medium", "high"], allow_null=True)
    churn_probability = serializers.FloatField(allow_null=True)


class CustomerLoyaltySerializer(serializers.Serializer):
    tier = serializers.CharField(allow_null=True)
    points = serializers.IntegerField()


class CustomerSerializer(serializers.ModelSerializer):
    """A customer. `segment`, `segments` and `predictions` come from segmentation
    (null / empty until its first run); `loyalty` from the loyalty programme (null
    without one, or before the customer is placed)."""

    email = serializers.EmailField(
        required=False, allow_blank=True, allow_null=True, max_length=254
    )
    attributes = serializers.JSONField(required=False, allow_null=True)
    segment = serializers.SerializerMethodField()
    segments = serializers.SerializerMethodField()
    predictions = serializers.SerializerMethodField()
    loyalty = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "id",
            *customer_fields.names(api=True),
            "segment",
            "segments",
            "predictions",
            "loyalty",
        ]
        read_only_fields = CUSTOMER_READ_ONLY
        extra_kwargs = {
            **{name: {"allow_null": True, "required": False} for name in NULLABLE_TEXT},
            "accepts_email": {"allow_null": True, "required": False},
            "accepts_sms": {"allow_null": True, "required": False},
            "latitude": {"min_value": -90, "max_value": 90},
            "longitude": {"min_value": -180, "max_value": 180},
        }

    def _info(self, obj) -> dict:
        return (self.context.get("enrichment") or {}).get(obj.pk, {})

    @extend_schema_field(SegmentRefSerializer(allow_null=True))
    def get_segment(self, obj):
        return self._info(obj).get("segment")

    @extend_schema_field(SegmentRefSerializer(many=True))
    def get_segments(self, obj):
        return self._info(obj).get("segments", [])

    @extend_schema_field(PredictionsSerializer(allow_null=True))
    def get_predictions(self, obj):
        return self._info(obj).get("predictions")

    @extend_schema_field(CustomerLoyaltySerializer(allow_null=True))
    def get_loyalty(self, obj):
        return self._info(obj).get("loyalty")

    def validate_attributes(self, value):
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object of names and values.")
        return _attributes_within_limit(self, value)


def _attributes_within_limit(serializer, value):
    """The same limit as a file's or a bulk record's attributes."""
    if isinstance(value, dict):
        limits = file_limits.import_limits(organization=serializer.context.get("organization"))
        problem = limits.attributes_problem(value)
        if problem:
            raise serializers.ValidationError(f"{problem[0].upper()}{problem[1:]}.")
    return value


class ProductSerializer(serializers.ModelSerializer):
    attributes = serializers.JSONField(required=False)
    merchandise = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="False for postage, fees and adjustments: left out of favourites, "
        "recommendations and demand. Detected unless set; null hands it back to detection.",
    )
    hidden = serializers.BooleanField(
        required=False, help_text="Left out of favourites, recommendations and demand."
    )

    def validate_attributes(self, value):
        return _attributes_within_limit(self, value)

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "category",
            "price",
            "url",
            "image_url",
            "in_stock",
            "merchandise",
            "merchandise_source",
            "hidden",
            "attributes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "merchandise_source", "created_at", "updated_at"]
        extra_kwargs = {"sku": {"validators": []}}


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = [
            "sku",
            "product_name",
            "category",
            "quantity",
            "unit_price",
            "amount",
            "discount_code",
            "discount_amount",
            "position",
            "line_id",
            "product",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    # null for a guest order (no customer)
    customer_id = serializers.CharField(
        source="customer.external_id", default=None, read_only=True, allow_null=True
    )
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "external_id",
            "customer",
            "customer_id",
            "ordered_at",
            "currency",
            "channel",
            "location",
            "total",
            "shipping_amount",
            "tax_amount",
            "is_return",
            "status",
            "properties",
            "lines",
        ]
        read_only_fields = fields


class OrderLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(required=False, allow_blank=True, max_length=255)
    product_name = serializers.CharField(required=False, allow_blank=True, max_length=500)
    category = serializers.CharField(required=False, allow_blank=True, max_length=255)
    quantity = serializers.IntegerField(
        required=False, min_value=-2_000_000_000, max_value=2_000_000_000
    )
    unit_price = serializers.DecimalField(
        max_digits=30, decimal_places=4, required=False, allow_null=True
    )
    amount = serializers.DecimalField(
        max_digits=30, decimal_places=4, required=False, allow_null=True
    )


class OrderUpdateSerializer(serializers.Serializer):
    """A correction of one order: the fields given change; `lines`, when given,
    replaces all the order's lines. Amounts and dates have the import's limits."""

    ordered_at = serializers.DateTimeField(required=False)
    customer_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Your id; null: a guest."
    )
    currency = serializers.CharField(required=False, allow_blank=True, max_length=3)
    channel = serializers.CharField(required=False, allow_blank=True, max_length=64)
    location = serializers.CharField(required=False, allow_blank=True, max_length=255)
    properties = serializers.DictField(required=False, allow_null=True)
    lines = OrderLineInputSerializer(many=True, required=False)


class EventSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.external_id", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "external_id",
            "customer",
            "customer_id",
            "type",
            "occurred_at",
            "properties",
        ]
        read_only_fields = fields


class ImportErrorSerializer(serializers.Serializer):
    """One rejected row of an import (or a whole-file problem, without `row`)."""

    row = serializers.IntegerField(required=False, allow_null=True)
    field = serializers.CharField(required=False, allow_blank=True)
    message = serializers.CharField()
    value = serializers.CharField(required=False, allow_blank=True)


class ImportSerializer(serializers.ModelSerializer):
    errors = serializers.SerializerMethodField()

    class Meta:
        model = Import
        fields = [
            "id",
            "kind",
            "status",
            "original_filename",
            "size_bytes",
            "source",
            "mapping",
            "options",
            "detected",
            "rows",
            "created",
            "updated",
            "unchanged",
            "rejected",
            "errors",
            "message",
            "job",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportErrorSerializer(many=True))
    def get_errors(self, obj):
        return [
            {k: e[k] for k in ("row", "field", "message", "value") if k in e} for e in obj.errors
        ]


@extend_schema_field(OpenApiTypes.STR)
class RatesField(serializers.Field):
    """Exchange rates for an import: a JSON object {"ZAR": "0.055"} or the wizard's
    and `--rate`'s text "ZAR=0.055, EUR=1.08" (one unit of each currency in the
    organisation's)."""

    def to_internal_value(self, data):
        import json

        from ..services.importing import rates_option

        if isinstance(data, str) and data.strip().startswith("{"):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError("Must be a JSON object.") from exc
        if not isinstance(data, (str, dict)):
            raise serializers.ValidationError('Must be {"ZAR": "0.055"} or "ZAR=0.055".')
        try:
            return rates_option(data)
        except ApplicationError as exc:
            raise serializers.ValidationError(exc.message) from exc

    def to_representation(self, value):
        return value


class ImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField()
    kind = serializers.ChoiceField(choices=ImportKind.choices)
    map = serializers.JSONField(
        required=False, help_text='A JSON object {"Source column": "field"}; "" ignores a column.'
    )
    date_format = serializers.CharField(
        required=False, allow_blank=True, help_text="As in strptime, e.g. %d/%m/%Y %H:%M"
    )
    delimiter = serializers.CharField(required=False, allow_blank=True, max_length=9)
    encoding = serializers.CharField(required=False, allow_blank=True, max_length=40)
    allow_deleted = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Re-create orders a person deleted (skipped and reported otherwise).",
    )
    rates = RatesField(
        required=False,
        help_text='Exchange rates: {"ZAR": "0.055"} or "ZAR=0.055, EUR=1.08" (1 unit of that '
        "currency in the organisation's). Orders in those currencies are converted; others "
        "keep their own currency.",
    )

    def validate_map(self, value):
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError("Must be a JSON object.") from exc
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise serializers.ValidationError(
                'Must be a JSON object such as {"InvoiceNo": "order_id"}.'
            )
        return value


class ImportStartedSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    import_id = serializers.IntegerField(source="import")


class BulkErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class StartedJobSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Follow it at jobs/{id}/.")
    kind = serializers.CharField(help_text="The step, e.g. `segments` or `predictions`.")


class BulkResultSerializer(serializers.Serializer):
    jobs = StartedJobSerializer(
        many=True,
        help_text="The jobs this write started (a refresh of segments and predictions when "
        "data changed), or already waiting ones that will read it; empty when nothing changed.",
    )
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = BulkErrorSerializer(many=True)


# The serializer field of each kind of file column.
RECORD_FIELD_TYPES = {
    "id": serializers.CharField,
    "email": serializers.CharField,
    "str": serializers.CharField,
    "date": serializers.DateField,
    "datetime": serializers.DateTimeField,
    "latitude": serializers.FloatField,
    "longitude": serializers.FloatField,
    "bool": serializers.BooleanField,
}


class CustomerRecordSerializer(serializers.Serializer):
    """One record of `customers/bulk/` (CSV column names; `external_id` works for `customer_id`)."""

    def get_fields(self):
        # The customers file's columns (customers/fields.py); only the id is required.
        fields = {
            f.file_column: RECORD_FIELD_TYPES[f.kind](required=f.kind == "id")
            for f in customer_fields.select(imported=True)
        }
        fields["attributes"] = serializers.DictField(required=False)
        return fields


class ProductRecordSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    price = serializers.DecimalField(max_digits=18, decimal_places=4, required=False)
    url = serializers.CharField(required=False)
    image_url = serializers.CharField(required=False)
    in_stock = serializers.BooleanField(required=False)
    merchandise = serializers.BooleanField(required=False)
    hidden = serializers.BooleanField(required=False)
    attributes = serializers.DictField(required=False)


class OrderLineRecordSerializer(serializers.Serializer):
    """One order line of `orders/bulk/`; records with the same order_id are one order."""

    order_id = serializers.CharField(required=False)
    line_id = serializers.CharField(
        required=False,
        help_text="Your key of the line within its order. Lines with a key are upserted by "
        "(order_id, line_id): an order may be split across calls and re-sent in any order; "
        "without keys a record set naming an order replaces all its lines.",
    )
    customer_id = serializers.CharField(required=False)
    ordered_at = serializers.DateTimeField()
    sku = serializers.CharField(required=False)
    product_name = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    quantity = serializers.IntegerField(required=False)
    unit_price = serializers.DecimalField(max_digits=18, decimal_places=4, required=False)
    amount = serializers.DecimalField(max_digits=18, decimal_places=4, required=False)
    currency = serializers.CharField(required=False)
    channel = serializers.CharField(required=False)
    location = serializers.CharField(required=False)
    city = serializers.CharField(
        required=False, help_text="The customer's address: the latest order's fills their profile."
    )
    region = serializers.CharField(required=False)
    country = serializers.CharField(required=False)
    postal_code = serializers.CharField(required=False)
    properties = serializers.DictField(required=False)


class EventRecordSerializer(serializers.Serializer):
    event_id = serializers.CharField(required=False)
    customer_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    type = serializers.CharField()
    properties = serializers.DictField(required=False)


class ErasedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    erased_at = serializers.DateTimeField()


class ConsentChangeSerializer(serializers.ModelSerializer):
    """One change of consent (services/consent.py): when the person decided, how it
    came, who recorded it and when."""

    via = serializers.CharField(
        read_only=True,
        help_text="import, api, site, unsubscribe, preference or system; empty for changes "
        "recorded before Segmenta kept how they came.",
    )
    recorded_by = serializers.CharField(source="actor_label", read_only=True)
    recorded_by_kind = serializers.CharField(source="actor_kind", read_only=True)

    class Meta:
        model = ConsentChange
        fields = [
            "id",
            "channel",
            "granted",
            "changed_at",
            "via",
            "source",
            "recorded_by",
            "recorded_by_kind",
            "recorded_at",
        ]
        read_only_fields = fields
