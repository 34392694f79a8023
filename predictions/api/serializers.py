"""API shapes of predictions (CONTRACT.md: `predictions/models/latest/`, plus the
live run's customers and product forecasts, and the runs themselves)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import CustomerPrediction, PredictionRun, ProductForecast

CONTRACT_BACKTEST_KEYS = (
    "cutoff",
    "horizon_days",
    "predicted_orders",
    "actual_orders",
    "mae_per_customer",
    "mae_same_pace",
    "top_decile_revenue_share",
    "calibration_by_band",
)


class ServedSerializer(serializers.Serializer):
    """What each customer-facing prediction uses: `bgnbd`, another model kind
    (`gradient_boosting`) or `baseline` (the naive rule it failed to beat)."""

    orders = serializers.CharField()
    value = serializers.CharField()
    churn = serializers.CharField()
    propensity = serializers.CharField()


class BacktestSerializer(serializers.Serializer):
    """The back-test (fit up to `cutoff`, compare the `horizon_days` after it). More keys
    follow these: weekly figures, churn calibration, plain-words summary."""

    cutoff = serializers.DateField()
    horizon_days = serializers.IntegerField()
    predicted_orders = serializers.FloatField()
    actual_orders = serializers.IntegerField()
    mae_per_customer = serializers.FloatField()
    top_decile_revenue_share = serializers.FloatField(allow_null=True)
    mae_same_pace = serializers.FloatField(allow_null=True)
    calibration_by_band = serializers.ListField(child=serializers.DictField())
    plain_words = serializers.ListField(child=serializers.CharField(), required=False)
    ranking_sentence = serializers.CharField(required=False, allow_null=True)


class BGNBDParamsSerializer(serializers.Serializer):
    r = serializers.FloatField()
    alpha = serializers.FloatField()
    a = serializers.FloatField()
    b = serializers.FloatField()


class SpendParamsSerializer(serializers.Serializer):
    p = serializers.FloatField()
    q = serializers.FloatField()
    gamma = serializers.FloatField()


class ModelLatestSerializer(serializers.Serializer):
    """Documentation of `GET predictions/models/latest/` (the view returns the selector's
    dict). `kind` is "heuristic", with `params` null, while the data is too thin for
    the models (`data_check.missing` says what is lacking)."""

    kind = serializers.ChoiceField(choices=["bgnbd", "heuristic"])
    time_unit = serializers.ChoiceField(choices=["day", "week"])
    params = BGNBDParamsSerializer(allow_null=True)
    spend_params = SpendParamsSerializer(allow_null=True)
    as_of = serializers.DateField()
    backtest = BacktestSerializer(allow_null=True)
    served = ServedSerializer()
    run_id = serializers.IntegerField()
    method = serializers.CharField()
    log_likelihood = serializers.FloatField(allow_null=True)
    data_check = serializers.DictField()
    settings = serializers.DictField()
    warnings = serializers.ListField(child=serializers.CharField())
    backtest_note = serializers.CharField(allow_null=True)
    n_customers = serializers.IntegerField()
    propensity = serializers.DictField(allow_null=True)
    demand = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()


class CustomerPredictionSerializer(serializers.ModelSerializer):
    customer = serializers.SerializerMethodField()

    class Meta:
        model = CustomerPrediction
        fields = [
            "id",
            "customer",
            "p_alive",
            "expected_orders_30d",
            "expected_orders_90d",
            "expected_orders_365d",
            "expected_next_order_at",
            "predicted_clv_365d",
            "expected_order_value",
            "churn_probability",
            "churn_risk",
            "propensity",
            "propensity_reason",
            "reason",
            "method",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "external_id": {"type": "string"}},
        }
    )
    def get_customer(self, obj) -> dict:
        return {"id": obj.customer_id, "external_id": obj.customer.external_id}


class ProductForecastSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProductForecast
        fields = [
            "id",
            "sku",
            "product",
            "name",
            "total_4w",
            "lower_4w",
            "upper_4w",
            "units_last_4w",
            "trend",
            "trend_change",
            "label",
            "method",
            "weeks",
            "history",
        ]
        read_only_fields = fields


class PredictionRunListSerializer(serializers.ModelSerializer):
    backtest = serializers.SerializerMethodField()

    class Meta:
        model = PredictionRun
        fields = [
            "id",
            "as_of",
            "method",
            "time_unit",
            "is_live",
            "n_customers",
            "n_products",
            "data_check",
            "backtest",
            "backtest_note",
            "job",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(BacktestSerializer(allow_null=True))
    def get_backtest(self, obj) -> dict | None:
        if not obj.backtest:
            return None
        return {k: obj.backtest.get(k) for k in CONTRACT_BACKTEST_KEYS}


class PredictionRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PredictionRun
        fields = [
            "id",
            "as_of",
            "method",
            "time_unit",
            "is_live",
            "n_customers",
            "n_products",
            "data_check",
            "params",
            "spend_params",
            "settings",
            "warnings",
            "backtest",
            "backtest_note",
            "propensity",
            "demand",
            "summary",
            "timings",
            "job",
            "created_at",
        ]
        read_only_fields = fields


class RunStartSerializer(serializers.Serializer):
    as_of = serializers.DateField(
        required=False, allow_null=True, help_text="Use orders up to this day (default: latest)."
    )


class SettingsSerializer(serializers.Serializer):
    annual_discount_rate = serializers.FloatField(
        min_value=0.0, max_value=0.5, help_text="Yearly discount rate as a fraction (0.1 = 10%)."
    )
