"""Goal audiences read the live predictions: order-soon scores are chances, sorted
best first, with the propensity model's hold-out AUC in plain words; value at risk
ranks by churn chance times value; `size` keeps the top N."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.tenancy import tenant_context
from audiences.services import audience_preview
from predictions.models import CustomerPrediction
from predictions.services import prediction_run
from predictions.tests.factories import simulate_world, write_world

AS_OF = dt.date(2024, 6, 30)


@pytest.fixture
def live(org):
    write_world(org, simulate_world(n_customers=800, as_of=AS_OF, history_days=400, seed=11))
    with tenant_context(org):
        return prediction_run(organization=org)


def test_order_soon_scores_are_chances_best_first(org, live):
    with tenant_context(org):
        figures = audience_preview(
            organization=org, definition={"kind": "goal", "goal": "order_soon", "days": 30}
        )
        scored = CustomerPrediction.objects.filter(run=live).count()
    assert figures["size"] == figures["candidates"] == scored
    assert 0 < figures["expected_conversions"] < scored
    model = figures["model"]
    assert model["summary"]
    if model["holdout_auc"] is not None:
        assert 0.5 < model["holdout_auc"] <= 1
        assert "times in 100" in model["summary"]


def test_size_keeps_the_top(org, live):
    with tenant_context(org):
        top = audience_preview(
            organization=org,
            definition={"kind": "goal", "goal": "order_soon", "days": 60, "size": 25},
        )
        everyone = audience_preview(
            organization=org, definition={"kind": "goal", "goal": "order_soon", "days": 60}
        )
    assert top["size"] == 25
    assert top["sample"] == everyone["sample"]  # the same best ten first
    assert top["expected_conversions"] < everyone["expected_conversions"]


def test_value_at_risk_ranks_by_value_at_stake(org, live):
    with tenant_context(org):
        figures = audience_preview(
            organization=org, definition={"kind": "goal", "goal": "high_value_at_risk"}
        )
        rows = {
            r.customer_id: r.churn_probability * max(r.predicted_clv_365d, 0)
            for r in CustomerPrediction.objects.filter(run=live)
        }
    best = max(rows.values())
    assert rows[figures["sample"][0]] == pytest.approx(best, rel=1e-3)
    assert figures["expected_conversions"] is None  # value at stake is not a chance
