"""Response and lookalike audiences on generated data with planted answers.

Every expectation comes from how the data was generated (who was made to respond,
who was made to look like the seed), never from the model's own output."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from audiences.definitions import definition_clean
from audiences.features import behaviour, profile_and_attributes
from audiences.ml import lookalike_evaluation, response_evaluation
from core.exceptions import ApplicationError
from customers.models import Customer, Event, Order, OrderLine
from customers.tests.factories import (
    CustomerFactory,
    EventFactory,
    OrderFactory,
    OrderLineFactory,
)

TIERS = ("gold", "silver", "bronze")
RESPONSE_RATE = {"gold": 0.75, "silver": 0.35, "bronze": 0.05}


def _save(org, model, rows):
    for row in rows:
        row.organization = org
    return model.objects.bulk_create(rows)


def _customers(org, n, attributes, fields):
    rows = [
        CustomerFactory.build(external_id=f"P{i:04d}", attributes=attributes(i), **fields(i))
        for i in range(n)
    ]
    return _save(org, Customer, rows)


@pytest.fixture
def campaign(org):
    """400 customers; the first 300 had 'email_sent' 60 days ago. Gold-tier customers
    with many visits clicked within 10 days far more often; gender, birth date and
    marital status play no part. Everyone has an order a year ago; responders who
    click also order after the email (which must not leak into their features)."""
    rng = np.random.default_rng(7)
    now = timezone.now()
    tiers = rng.choice(TIERS, size=400)
    visits = rng.poisson(5, size=400)
    with tenant_context(org):
        customers = _customers(
            org,
            400,
            lambda i: {
                "loyalty_tier": str(tiers[i]),
                "visits": int(visits[i]),
                "marital_status": str(rng.choice(["single", "married"])),
                "email_address": f"p{i}@example.com",
                "notes": f"called on {i} about a parcel",
            },
            lambda i: {
                "gender": str(rng.choice(["F", "M"])),
                "birth_date": dt.date(1950 + int(rng.integers(0, 50)), 1, 1),
            },
        )
        exposed_at = now - dt.timedelta(days=60)
        events, orders = [], []
        responded = np.zeros(400, dtype=bool)
        for i, c in enumerate(customers):
            orders.append(OrderFactory.build(customer=c, ordered_at=now - dt.timedelta(days=365)))
            if i >= 300:
                continue
            events.append(EventFactory.build(customer=c, type="email_sent", occurred_at=exposed_at))
            p = RESPONSE_RATE[tiers[i]] * (1.2 if visits[i] > 5 else 0.8)
            if rng.random() < p:
                responded[i] = True
                when = exposed_at + dt.timedelta(days=int(rng.integers(1, 10)))
                events.append(EventFactory.build(customer=c, type="clicked", occurred_at=when))
                orders.append(OrderFactory.build(customer=c, ordered_at=when))
            elif rng.random() < 0.3:
                # a late click, after the 30-day window: not a response
                late = exposed_at + dt.timedelta(days=45)
                events.append(EventFactory.build(customer=c, type="clicked", occurred_at=late))
        _save(org, Event, events)
        orders = _save(org, Order, orders)
        _save(org, OrderLine, [OrderLineFactory.build(order=o, product=None) for o in orders])
    return {"customers": customers, "tiers": tiers, "responded": responded}


RESPONSE = {"kind": "response", "event": "clicked", "exposure_event": "email_sent"}


def test_planted_response_is_learned_and_the_unexposed_are_scored(org, campaign):
    with tenant_context(org):
        evaluation = response_evaluation(definition_clean(RESPONSE), organization=org)
    customers = campaign["customers"]
    unexposed = {c.pk for c in customers[300:]}
    assert set(evaluation.scores) == unexposed
    assert evaluation.probabilities
    assert all(0.0 <= s <= 1.0 for s in evaluation.scores.values())
    model = evaluation.model
    assert model.holdout_auc > 0.7, model
    assert "ranked the responder higher" in model.summary
    by_tier = {t: [] for t in TIERS}
    for i, c in enumerate(customers[300:], start=300):
        by_tier[campaign["tiers"][i]].append(evaluation.scores[c.pk])
    assert np.mean(by_tier["gold"]) > np.mean(by_tier["silver"]) > np.mean(by_tier["bronze"])
    # calibrated: expected responses among 100 unexposed near the planted rates
    expected = sum(RESPONSE_RATE[campaign["tiers"][i]] for i in range(300, 400))
    assert 0.5 * expected < sum(evaluation.scores.values()) < 1.5 * expected


def test_response_leaves_sensitive_columns_out_unless_unlocked(org, campaign):
    with tenant_context(org):
        default = response_evaluation(definition_clean(RESPONSE), organization=org)
        unlocked = response_evaluation(
            definition_clean({**RESPONSE, "use_sensitive": True, "reason": "Fairness audit"}),
            organization=org,
        )
        org.sensitive_attributes = ["loyalty_tier"]
        org.save()
        marked = response_evaluation(definition_clean(RESPONSE), organization=org)
    excluded = default.model.excluded_sensitive
    assert {"gender", "birth_date", "marital_status"} <= set(excluded)
    text = " ".join(default.model.features).lower()
    assert "gender" not in text and "birth" not in text and "marital" not in text
    assert "Age (from birth date)" not in default.model.features
    assert "visits" in default.model.features
    # identifiers and free text are never features
    assert "email_address" not in text and "notes" not in text
    assert unlocked.model.excluded_sensitive == []
    assert "Age (from birth date)" in unlocked.model.features
    assert any(f.startswith("Gender: ") for f in unlocked.model.features)
    assert any(f.startswith("marital_status: ") for f in unlocked.model.features)
    assert "loyalty_tier" in marked.model.excluded_sensitive
    assert not any(f.startswith("loyalty_tier") for f in marked.model.features)


def test_an_order_as_the_response(org, campaign):
    """'order' means a paid order: the responders ordered within 10 days of the email."""
    with tenant_context(org):
        evaluation = response_evaluation(
            definition_clean({**RESPONSE, "event": "order"}), organization=org
        )
    assert evaluation.model.holdout_auc > 0.7
    assert evaluation.model.details["positives"] == int(campaign["responded"][:300].sum())


def test_too_few_exposed_or_responders_is_a_clear_error(org, campaign):
    with tenant_context(org):
        with pytest.raises(ApplicationError) as caught:
            response_evaluation(
                definition_clean({**RESPONSE, "exposure_event": "sms_sent"}), organization=org
            )
        assert "sms_sent" in caught.value.message
        assert "exposure_event" in caught.value.extra["fields"]
        # a response nobody had within one day: too few responders, named
        with pytest.raises(ApplicationError) as caught:
            response_evaluation(definition_clean({**RESPONSE, "within_days": 1}), organization=org)
        assert "only" in caught.value.message and "responded" in caught.value.message
        assert "at least 20" in caught.value.message


def test_behaviour_stops_at_each_customers_own_cutoff():
    """An order after a customer's cut-off is not counted (no leak of the response)."""
    t = pd.Timestamp("2025-01-01", tz="UTC")
    lines = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "order_id": [10, 11, 12],
            "ordered_at": pd.DatetimeIndex([t, t + pd.Timedelta(days=20), t], tz="UTC"),
            "amount": [30.0, 50.0, 40.0],
            "product_id": [1, 2, 1],
        }
    )
    cutoff = np.array([t + pd.Timedelta(days=10), t + pd.Timedelta(days=30)])
    cutoff_ns = pd.DatetimeIndex(cutoff).as_unit("ns").asi8
    out = behaviour(np.array([1, 2]), cutoff_ns, lines=lines, events=None)
    assert out.frame["orders"].tolist() == [1.0, 1.0]
    assert out.frame["spend"].tolist() == [30.0, 40.0]
    assert out.frame["days_since_last_order"].tolist() == [10.0, 30.0]


def test_identifiers_and_free_text_are_skipped():
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1, 41),
            "attr:shoe_size": np.arange(40) % 7 + 36.0,
            "attr:customer_ref": np.arange(40) + 1000.0,
            "attr:comment": [f"note {i}" for i in range(40)],
            "attr:plan": ["pro" if i % 3 else "basic" for i in range(40)],
        }
    )
    out = profile_and_attributes(frame, cutoff_ns=np.zeros(40, dtype=np.int64))
    assert out.feature_names() == ["shoe_size", "plan: pro", "plan: basic"]
    assert set(out.skipped) == {"customer_ref", "comment"}


@pytest.fixture
def lookalikes(org):
    """300 customers: 30 seed customers on the 'pro' plan with many visits and big
    orders, 20 planted look-alikes just like them outside the seed, and 250 others
    on the 'basic' plan with few visits and small orders."""
    rng = np.random.default_rng(3)
    now = timezone.now()

    def like(i):
        return i < 50

    with tenant_context(org):
        customers = _customers(
            org,
            300,
            lambda i: {
                "plan": "pro" if like(i) else str(rng.choice(["basic", "basic", "pro"])),
                "visits": int(rng.poisson(20 if like(i) else 4)),
            },
            lambda i: {"gender": str(rng.choice(["F", "M"]))},
        )
        orders = []
        for i, c in enumerate(customers):
            for _ in range(int(rng.integers(3, 6)) if like(i) else 1):
                orders.append(
                    OrderFactory.build(
                        customer=c,
                        ordered_at=now - dt.timedelta(days=int(rng.integers(1, 200))),
                        total=120 if like(i) else 15,
                    )
                )
        orders = _save(org, Order, orders)
        _save(
            org,
            OrderLine,
            [OrderLineFactory.build(order=o, product=None, amount=o.total) for o in orders],
        )
    return {"customers": customers, "seed": customers[:30], "planted": customers[30:50]}


def test_planted_lookalikes_are_ranked_first(org, lookalikes):
    seed = [c.external_id for c in lookalikes["seed"]] + ["NOPE-1", "NOPE-2"]
    with tenant_context(org):
        evaluation = lookalike_evaluation(
            definition_clean({"kind": "lookalike", "seed_customer_ids": seed}), organization=org
        )
    ranking = list(evaluation.scores)
    assert not {c.pk for c in lookalikes["seed"]} & set(ranking)
    assert len(ranking) == 270
    planted = {c.pk for c in lookalikes["planted"]}
    assert len(planted & set(ranking[:20])) >= 17
    assert evaluation.model.holdout_auc > 0.8
    assert "gender" in evaluation.model.excluded_sensitive
    assert any("NOPE-1" in note and "2 seed" in note for note in evaluation.notes)


def test_a_small_seed_is_ranked_by_similarity(org, lookalikes):
    seed = [c.external_id for c in lookalikes["seed"][:5]]
    with tenant_context(org):
        evaluation = lookalike_evaluation(
            definition_clean({"kind": "lookalike", "seed_customer_ids": seed}), organization=org
        )
    assert evaluation.model.kind == "similarity"
    planted = {c.pk for c in lookalikes["seed"][5:] + lookalikes["planted"]}
    assert len(planted & set(list(evaluation.scores)[:45])) >= 35


def test_a_seed_nobody_matches_is_an_error(org, lookalikes):
    with tenant_context(org):
        with pytest.raises(ApplicationError) as caught:
            lookalike_evaluation(
                definition_clean({"kind": "lookalike", "seed_customer_ids": ["X1", "X2"]}),
                organization=org,
            )
    assert "seed_customer_ids" in caught.value.extra["fields"]


def test_a_segment_seed_leaves_its_members_out(org):
    """Seed from a segment: its members are never listed; everyone else is."""
    from audiences.tests.helpers import segments_world

    world = segments_world(org)
    members = {c.pk for c in world["customers"][:20]}
    with tenant_context(org):
        for i, c in enumerate(world["customers"]):
            Customer.objects.filter(pk=c.pk).update(attributes={"visits": i % 7 + 10 * (i < 25)})
        evaluation = lookalike_evaluation(
            definition_clean({"kind": "lookalike", "seed_segment_id": world["a"].pk}),
            organization=org,
        )
        with pytest.raises(ApplicationError) as caught:
            lookalike_evaluation(
                definition_clean({"kind": "lookalike", "seed_segment_id": 999_999}),
                organization=org,
            )
    assert set(evaluation.scores) == {c.pk for c in world["customers"]} - members
    assert "seed_segment_id" in caught.value.extra["fields"]
