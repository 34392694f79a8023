"""Prediction runs and what they predicted (issue 5).

A `PredictionRun` is one pass of the predictions step for an organisation as of
a date: the fitted purchase (BG/NBD) and spend (Gamma-Gamma) models, the
minimum-data check, the back-test that goes with it, the propensity and demand
summaries and the timings. Exactly one run per organisation is live
(`is_live`); a new run replaces it in one transaction, and a run is only ever
written once it has succeeded (a failed job leaves its reason on the Job and
nothing here).

`CustomerPrediction` holds one customer's figures in one run and
`ProductForecast` one product's next weeks. Older runs keep their JSON
summaries (so accuracy over time stays visible) while their per-customer and
per-product rows are pruned.

Every secondary index and unique constraint leads with `organization`, and
foreign keys to tenant tables carry no index of their own (DESIGN: tenancy).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import TenantModel, organization_field

__all__ = [
    "ChurnRisk",
    "CustomerPrediction",
    "PredictionRun",
    "PredictionSettings",
    "ProductForecast",
    "Trend",
]


class PredictionSettings(TenantModel):
    """What the owner may tune about predictions (one row per organisation)."""

    annual_discount_rate = models.FloatField(
        default=0.10,
        help_text="Yearly rate at which future revenue is discounted in the 12-month value "
        "(0.10 = 10%).",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantModel.Meta):
        # The table keeps the name it had in the segmentation app (no data moved).
        db_table = "segmentation_predictionsettings"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="predsettings_org_unique"),
            models.CheckConstraint(
                condition=Q(annual_discount_rate__gte=0) & Q(annual_discount_rate__lte=1),
                name="predsettings_rate_bounds",
            ),
        ]
        verbose_name_plural = "prediction settings"

    def __str__(self) -> str:
        return f"Prediction settings (discount {self.annual_discount_rate:.0%} a year)"


class PredictionRun(TenantModel):
    """One prediction run of an organisation's customers and products as of a date."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"

    as_of = models.DateField(help_text="Orders up to and including this day (UTC) were used.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    # "bgnbd+gamma_gamma", "bgnbd" (spend model refused the data) or "heuristic"
    method = models.CharField(max_length=32)
    time_unit = models.CharField(max_length=8, default="day")
    # {"ok", "missing": [sentences], "message", "n_customers", "n_repeat_customers", "history_days"}
    data_check = models.JSONField(default=dict, blank=True)
    # BG/NBD {"r", "alpha", "a", "b", "log_likelihood", ...}; empty for the heuristic
    params = models.JSONField(default=dict, blank=True)
    # Gamma-Gamma {"p", "q", "gamma", ...}; empty when not fitted
    spend_params = models.JSONField(default=dict, blank=True)
    # what was used: discount rate, horizons, churn horizon, propensity horizon, demand weeks
    settings = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # BacktestResult.to_dict() (the API contract's keys first) plus "ranking_sentence";
    # null when the history is too short to hold a period back
    backtest = models.JSONField(null=True, blank=True)
    backtest_note = models.CharField(max_length=500, blank=True)
    propensity = models.JSONField(null=True, blank=True)  # PropensityResult.to_dict()
    demand = models.JSONField(null=True, blank=True)  # as_of, weeks, interval, notes, counts
    # totals, risk band counts, value histogram, at-risk threshold
    summary = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)  # seconds per step
    n_customers = models.PositiveIntegerField(default=0)
    n_products = models.PositiveIntegerField(default=0)
    is_live = models.BooleanField(default=False)
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        # The table keeps the name it had in the segmentation app (no data moved).
        db_table = "segmentation_predictionrun"
        indexes = [models.Index(fields=["organization", "-created_at"], name="predrun_org_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_live=True), name="predrun_one_live_per_org"
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Predictions as of {self.as_of:%Y-%m-%d}"

    @property
    def is_heuristic(self) -> bool:
        return self.method == "heuristic"

    @property
    def method_label(self) -> str:
        return {
            "bgnbd+gamma_gamma": "BG/NBD purchase model with Gamma-Gamma spend model",
            "bgnbd": "BG/NBD purchase model (spend: each customer's own average)",
            "heuristic": "Simple averages (too little history for the models)",
        }.get(self.method, self.method)


class ChurnRisk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class CustomerPrediction(TenantModel):
    """One customer's predictions in one run."""

    # No database-level foreign keys (issue 15; as the memberships and recommendation
    # rows): a run writes a row a customer and PostgreSQL checked three constraints on
    # each. Row-level security binds each row to the organisation in scope; deletions
    # still cascade through Django's on_delete and the erasure handler.
    organization = organization_field(db_index=False, db_constraint=False)  # indexes lead with it
    run = models.ForeignKey(
        PredictionRun, on_delete=models.CASCADE, related_name="customer_predictions",
        db_index=False, db_constraint=False,
    )  # fmt: skip
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    # null for the heuristic, which does not estimate whether someone has left
    p_alive = models.FloatField(null=True, blank=True)
    expected_orders_30d = models.FloatField()
    expected_orders_90d = models.FloatField()
    expected_orders_365d = models.FloatField()
    expected_next_order_at = models.DateField(null=True, blank=True)  # null: not expected
    predicted_clv_365d = models.FloatField(help_text="Discounted value of the next 12 months.")
    expected_order_value = models.FloatField()
    churn_probability = models.FloatField(help_text="Chance of no order in the next 90 days.")
    churn_risk = models.CharField(max_length=6, choices=ChurnRisk.choices)
    propensity = models.FloatField(null=True, blank=True)  # P(order in the next 30 days)
    propensity_reason = models.CharField(max_length=300, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    method = models.CharField(max_length=32)

    class Meta(TenantModel.Meta):
        # The table keeps the name it had in the segmentation app (no data moved).
        db_table = "segmentation_customerprediction"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "customer"], name="custpred_org_run_customer"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "run", "-predicted_clv_365d"], name="custpred_org_run_value"
            ),
            models.Index(
                fields=["organization", "run", "churn_risk", "-predicted_clv_365d"],
                name="custpred_org_run_risk",
            ),
            models.Index(fields=["organization", "customer"], name="custpred_org_customer"),
        ]

    def __str__(self) -> str:
        return f"Prediction for customer {self.customer_id} (run {self.run_id})"

    def as_api(self) -> dict:
        """The customers API's `predictions` object (CONTRACT.md)."""
        return {
            "p_alive": self.p_alive,
            "expected_orders_90d": self.expected_orders_90d,
            "predicted_clv_365d": self.predicted_clv_365d,
            "expected_next_order_at": self.expected_next_order_at.isoformat()
            if self.expected_next_order_at
            else None,
            "churn_risk": self.churn_risk,
            "churn_probability": self.churn_probability,
        }


class Trend(models.TextChoices):
    RISING = "rising", "Rising"
    FALLING = "falling", "Falling"
    STEADY = "steady", "Steady"
    INSUFFICIENT = "insufficient", "Not enough history"


class ProductForecast(TenantModel):
    """Units one product is expected to sell in the next weeks, with a range."""

    run = models.ForeignKey(
        PredictionRun, on_delete=models.CASCADE, related_name="product_forecasts", db_index=False
    )
    product = models.ForeignKey(
        "customers.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    sku = models.CharField(max_length=255)
    name = models.CharField(max_length=500, blank=True)
    # [{"start": "YYYY-MM-DD", "units", "lower", "upper"}] for the next weeks
    weeks = models.JSONField(default=list, blank=True)
    # [{"start", "units"}] for the last weeks, for the chart
    history = models.JSONField(default=list, blank=True)
    total_4w = models.FloatField()
    lower_4w = models.FloatField()
    upper_4w = models.FloatField()
    units_last_4w = models.FloatField(default=0)
    trend = models.CharField(max_length=12, choices=Trend.choices)
    # relative: the next 4 weeks' expected units against the last 4 weeks' sales
    trend_change = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=300, blank=True)
    method = models.CharField(max_length=32)
    method_label = models.CharField(max_length=100, blank=True)

    class Meta(TenantModel.Meta):
        # The table keeps the name it had in the segmentation app (no data moved).
        db_table = "segmentation_productforecast"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "sku"], name="prodforecast_org_run_sku"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "run", "-total_4w"], name="prodforecast_org_run_total"
            ),
            models.Index(
                fields=["organization", "run", "trend"], name="prodforecast_org_run_trend"
            ),
        ]

    def __str__(self) -> str:
        return f"Forecast for {self.sku} (run {self.run_id})"
