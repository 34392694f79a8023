"""The buy_category goal on generated orders with a planted answer: regular buyers
of a category keep buying it, others never do."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from audiences.definitions import definition_clean
from audiences.goals import buy_category_evaluation
from core.exceptions import ApplicationError
from customers.models import Customer, Order, OrderLine
from customers.tests.factories import CustomerFactory, OrderFactory, OrderLineFactory


def _save(org, model, rows):
    for row in rows:
        row.organization = org
    return model.objects.bulk_create(rows)


@pytest.fixture
def garden(org):
    """240 customers over the last 400 days: 80 garden regulars who buy garden goods
    every 10 to 20 days (and kitchen goods now and then), 160 who buy only kitchen
    goods every 20 to 60 days."""
    rng = np.random.default_rng(11)
    now = timezone.now()
    with tenant_context(org):
        customers = _save(
            org,
            Customer,
            [CustomerFactory.build(external_id=f"G{i:03d}") for i in range(240)],
        )
        orders, categories = [], []
        for i, c in enumerate(customers):
            regular = i < 80
            gap = rng.uniform(10, 20) if regular else rng.uniform(20, 60)
            day = 400 - rng.uniform(0, gap)
            while day > 0:
                orders.append(
                    OrderFactory.build(customer=c, ordered_at=now - dt.timedelta(days=day))
                )
                categories.append("Garden" if regular and rng.random() < 0.8 else "Kitchen")
                day -= gap * rng.uniform(0.8, 1.2)
        orders = _save(org, Order, orders)
        _save(
            org,
            OrderLine,
            [
                OrderLineFactory.build(order=o, product=None, category=cat)
                for o, cat in zip(orders, categories, strict=True)
            ],
        )
    return customers


def test_regular_category_buyers_score_highest(org, garden):
    with tenant_context(org):
        evaluation = buy_category_evaluation(
            definition_clean({"kind": "goal", "goal": "buy_category", "category": "garden"}),
            organization=org,
        )
    assert evaluation.probabilities
    assert set(evaluation.scores) == {c.pk for c in garden}
    regulars = {c.pk for c in garden[:80]}
    top = list(evaluation.scores)[:80]
    assert len(regulars & set(top)) >= 75
    assert evaluation.model.holdout_auc > 0.9
    assert evaluation.model.details["category"] == "Garden"
    assert "Share of spend in the category" in evaluation.model.features
    # calibrated: a regular buys every 10 to 20 days, so nearly surely within 30
    scores = evaluation.scores
    assert np.mean([scores[pk] for pk in regulars]) > 0.8
    assert np.mean([s for pk, s in scores.items() if pk not in regulars]) < 0.1


def test_a_category_nobody_bought_names_it_and_suggests_others(org, garden):
    with tenant_context(org):
        with pytest.raises(ApplicationError) as caught:
            buy_category_evaluation(
                definition_clean({"kind": "goal", "goal": "buy_category", "category": "Toys"}),
                organization=org,
            )
    message = caught.value.message
    assert "'Toys'" in message and "Garden" in message and "Kitchen" in message
    assert "category" in caught.value.extra["fields"]


def test_too_few_recent_buyers_is_a_clear_error(org, garden):
    with tenant_context(org):
        with pytest.raises(ApplicationError) as caught:
            buy_category_evaluation(
                definition_clean(
                    {"kind": "goal", "goal": "buy_category", "category": "Garden", "days": 1}
                ),
                organization=org,
            )
    assert "at least 20" in caught.value.message
    assert "days" in caught.value.extra["fields"]
