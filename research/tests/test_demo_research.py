"""The demo organisation's feedback and survey (research/demo.py): deterministic,
idempotent, tied to customers who ordered, dated by the demo's own data, with one
theme rising in the last 30 days."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer, Event, Feedback, Order
from research import demo
from research.models import Survey, SurveyResponse

# the demo data is historical: its newest order, not today, anchors the feedback
NEWEST = dt.datetime(2025, 12, 9, 15, 30, tzinfo=dt.UTC)


@pytest.fixture
def demo_org(org):
    rng = random.Random(7)
    with tenant_context(org):
        customers = Customer.objects.bulk_create(
            [Customer(organization=org, external_id=f"{12000 + i}") for i in range(150)]
        )
        orders = []
        for i, customer in enumerate(customers):
            for j in range(4):
                days = rng.randint(0, 200) if (i, j) != (0, 0) else 0
                orders.append(
                    Order(
                        organization=org,
                        external_id=f"5{i:03d}{j}",
                        customer=customer,
                        ordered_at=NEWEST - dt.timedelta(days=days, hours=rng.randint(0, 8)),
                        total=10,
                    )
                )
        # a guest order and a refunded one: nobody to tie feedback to, not a purchase
        orders.append(Order(organization=org, external_id="guest", ordered_at=NEWEST))
        orders.append(
            Order(
                organization=org,
                external_id="refunded",
                customer=customers[1],
                ordered_at=NEWEST + dt.timedelta(days=3),
                status="refunded",
            )
        )
        Order.objects.bulk_create(orders)
    return org


def _rows(org):
    with tenant_context(org):
        return demo.demo_feedback_rows(demo._orders(NEWEST), anchor=NEWEST)


def test_the_generated_feedback_is_deterministic(demo_org):
    first, second = _rows(demo_org), _rows(demo_org)
    assert first == second
    assert len(first) == demo.FEEDBACK_COUNT
    # another seed gives other feedback
    with tenant_context(demo_org):
        other = demo.demo_feedback_rows(demo._orders(NEWEST), anchor=NEWEST, seed=1)
    assert [r["text"] for r in other] != [r["text"] for r in first]


def test_delivery_is_the_theme_rising_in_the_last_30_days(demo_org):
    from research.text.trends import theme_trends

    rows = _rows(demo_org)
    themes = list(demo.THEME_WEIGHTS)
    trends = theme_trends(
        [r["created_at"] for r in rows], [themes.index(r["theme"]) for r in rows], NEWEST.date()
    )
    by_theme = {themes[k]: v["trend"] for k, v in trends.items()}
    assert by_theme["delivery"] == "growing"
    assert [t for t, trend in by_theme.items() if trend == "growing"] == ["delivery"]
    # praise and complaints are both there, for every theme
    for theme in themes:
        kinds = {r["complaint"] for r in rows if r["theme"] == theme}
        assert kinds == {True, False}, theme


def test_seeding_adds_feedback_and_a_survey_once(demo_org):
    added = demo.seed_demo_research(demo_org)
    assert added == {
        "feedback": demo.FEEDBACK_COUNT,
        "survey_responses": demo.SURVEY_RESPONSES,
    }
    with tenant_context(demo_org):
        counts = Counter(Feedback.objects.values_list("source", flat=True))
        total = Feedback.objects.count()
        assert again_is_noop(demo_org)
        assert Feedback.objects.count() == total
        assert SurveyResponse.objects.count() == demo.SURVEY_RESPONSES
    assert 300 <= counts["review"] + counts["support"] <= 600
    assert counts["review"] > counts["support"] > 50
    assert counts["survey"] == demo.SURVEY_RESPONSES


def again_is_noop(org) -> bool:
    return demo.seed_demo_research(org) == {"feedback": 0, "survey_responses": 0}


def test_feedback_comes_from_customers_who_ordered_before_it(demo_org):
    demo.seed_demo_research(demo_org)
    with tenant_context(demo_org):
        items = list(Feedback.objects.exclude(source="survey"))
        first_order = {
            c.pk: min(o.ordered_at for o in c.orders.filter(status="paid"))
            for c in Customer.objects.prefetch_related("orders")
        }
    assert all(f.customer_id is not None for f in items)
    assert all(first_order[f.customer_id] < f.created_at <= NEWEST for f in items)
    reviews = [f for f in items if f.source == "review"]
    rated = sum(f.rating is not None for f in reviews)
    assert rated / len(reviews) > 0.8  # stars on most reviews
    assert all(f.rating is None for f in items if f.source == "support")
    assert all(f.text for f in items)


def test_the_survey_has_personal_answers_with_events_and_feedback(demo_org):
    demo.seed_demo_research(demo_org)
    with tenant_context(demo_org):
        survey = Survey.objects.get(name="How did we do?")
        assert [q["type"] for q in survey.questions] == ["nps", "rating", "choice", "text"]
        responses = list(SurveyResponse.objects.filter(survey=survey).select_related("feedback"))
        assert len(responses) == demo.SURVEY_RESPONSES
        assert {r.channel for r in responses} == {"personal"}
        assert len({r.customer_id for r in responses}) == len(responses)
        for r in responses:
            assert 0 <= r.answers[0] <= 10 and 1 <= r.answers[1] <= 5
            assert r.feedback is not None and r.feedback.source == "survey"
            assert r.feedback.rating == r.answers[1]
            assert NEWEST - dt.timedelta(days=21) <= r.created_at <= NEWEST
        events = Event.objects.filter(type="survey_answered").count()
    assert events == demo.SURVEY_RESPONSES
    scores = [r.answers[0] for r in responses]
    promoters = sum(s >= 9 for s in scores) / len(scores)
    detractors = sum(s <= 6 for s in scores) / len(scores)
    assert promoters > detractors > 0  # a believable, positive but not perfect NPS


def test_an_organisation_without_orders_gets_nothing(org):
    assert demo.seed_demo_research(org) == {"feedback": 0, "survey_responses": 0}
