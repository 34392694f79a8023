"""The customer page at scale (issue 15): a fixed number of queries however much a
customer has (no query per order, segment run, code or feedback item), each one
naming the organisation, so an index leading with it answers it."""

from __future__ import annotations

import datetime as dt
import importlib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tenancy import tenant_context

pytestmark = pytest.mark.django_db

# Everything the page reads with every capability's panel filled: the session, the
# user and their membership (the middleware), the organisation switcher (the context
# processor); the customer, their orders and the orders' lines, events and consent
# history; and one to three per panel (segments now and over time; prediction;
# recommendations' run and rows; loyalty programme, tiers, account; offer codes and
# their uses; feedback and survey answers). It was 26 before issue 15.
MAX_QUERIES = 20

# the apps whose `build_world` fills the page's panels (segmentation's builds the
# customers app's first)
WORLDS = ("segmentation", "predictions", "recommendations", "loyalty", "offers", "research")


def _statements(queries) -> list[str]:
    """The page's own statements (PostgreSQL precedes each with the one that sets
    the organisation for row-level security)."""
    return [q["sql"] for q in queries if not q["sql"].startswith("SELECT set_config")]


def _limit() -> int:
    return MAX_QUERIES * (2 if connection.vendor == "postgresql" else 1)


def _customer_with_history(org, n: int):
    """The first customer of a world with every panel filled, and `n` of each thing
    that is listed on their page."""
    for app in WORLDS:
        importlib.import_module(f"{app}.tests.factories").build_world(org)
    with tenant_context(org):
        from customers.models import Customer

        customer = Customer.objects.order_by("pk").first()
    _add_history(org, customer, range(n))
    return customer


def _add_history(org, customer, numbers: range) -> None:
    """One more of each thing listed on the customer's page per number: an order
    (three lines), an event, a consent change, feedback, a past segmentation run
    (cluster and RFM), a recommended product, an offer code (used) and a hold-out,
    a survey answer."""
    from customers.models import Product
    from customers.tests.factories import (
        ConsentChangeFactory,
        EventFactory,
        FeedbackFactory,
        OrderFactory,
        OrderLineFactory,
    )
    from offers.models import Offer, OfferRecipient, OfferRedemption, OfferStatus
    from recommendations.models import CustomerRecommendation, RecommendationRun
    from research.models import Survey, SurveyResponse
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    with tenant_context(org):
        cluster = Segment.objects.get(key="cluster-world")
        rfm, _ = Segment.objects.get_or_create(
            kind=SegmentKind.RFM, key="rfm-champions", defaults={"name": "Champions"}
        )
        rec_run = RecommendationRun.objects.get(is_live=True)
        now = timezone.now()
        for i in numbers:
            order = OrderFactory(customer=customer)
            for _ in range(3):
                OrderLineFactory(order=order)
            EventFactory(customer=customer)
            ConsentChangeFactory(customer=customer, channel="sms" if i % 2 else "email")
            FeedbackFactory(customer=customer)
            run = SegmentationRun.objects.create(
                as_of=dt.date(2024, 1, 1) + dt.timedelta(days=i),
                created_at=now - dt.timedelta(days=100 - i),
            )
            for segment in (cluster, rfm):
                SegmentMembership.objects.create(run=run, segment=segment, customer=customer)
            CustomerRecommendation.objects.create(
                run=rec_run,
                customer=customer,
                product=Product.objects.create(sku=f"REC-{i}", name=f"Recommended {i}"),
                rank=i + 2,
                score=0.5,
                reason="Often bought together",
            )
            offer = Offer.objects.create(
                name=f"Offer {i}", kind="percent", value="10", segment_ids=[],
                status=OfferStatus.READY, built_at=now,
            )  # fmt: skip
            code = f"CODE{i:04d}"
            recipient = OfferRecipient.objects.create(offer=offer, customer=customer, code=code)
            OfferRedemption.objects.create(
                offer=offer, recipient=recipient, customer=customer, order=order, code=code,
                revenue=20, discount=2, redeemed_at=now,
            )  # fmt: skip
            held = Offer.objects.create(
                name=f"Held {i}", kind="percent", value="10", segment_ids=[],
                status=OfferStatus.READY, built_at=now,
            )  # fmt: skip
            OfferRecipient.objects.create(offer=held, customer=customer, code="", holdout=True)
            survey = Survey.objects.create(
                name=f"Survey {i}", questions=[{"type": "text", "text": "Anything else?"}]
            )
            SurveyResponse.objects.create(
                survey=survey, customer=customer, channel="personal", answers=[f"Answer {i}"]
            )


def _page(client, customer):
    client.get(f"/customers/{customer.pk}/")  # per-process caches (capabilities, urls) warm
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 200
    return response.content.decode(), _statements(queries.captured_queries)


def test_the_customer_page_reads_a_fixed_number_of_queries(
    owner_client, org, django_assert_max_num_queries
):
    customer = _customer_with_history(org, 12)
    owner_client.get(f"/customers/{customer.pk}/")
    with django_assert_max_num_queries(_limit()):
        response = owner_client.get(f"/customers/{customer.pk}/")
    html = response.content.decode()
    # every panel was drawn with its rows: the bound is not met by an empty page
    for shown in (
        "Recommended 3",  # the fifth best recommendation (the panel shows five)
        "Held 11",  # kept back from the twelfth offer
        "CODE0011",  # and given a code in another
        "Answer 11",  # a survey answer
        "World segment",  # segment now
        "Champions",  # and the RFM group over time
        "Gold",  # loyalty tier
        "Lovely mugs.",  # feedback
    ):
        assert shown in html, shown
    assert 'id="panel-predictions"' in html and "Churn risk" in html


def test_no_query_per_row(owner_client, org):
    """Three of everything or fifteen: the same queries."""
    customer = _customer_with_history(org, 3)
    _, few = _page(owner_client, customer)
    _add_history(org, customer, range(3, 15))
    html, many = _page(owner_client, customer)
    assert "Held 14" in html and "Answer 14" in html
    assert len(many) == len(few) <= MAX_QUERIES


def test_each_query_names_the_organisation(owner_client, org):
    """Tables are filtered by organisation (their indexes lead with it): no query of
    the page's tenant tables relies on row-level security alone to narrow them, as
    a related manager's prefetch (`order_id IN (...)`) did."""
    customer = _customer_with_history(org, 2)
    _, statements = _page(owner_client, customer)
    tenant = [s for s in statements if not re.search(r'FROM "(django_session|accounts_)', s)]
    assert len(tenant) >= 14
    for sql in tenant:
        assert re.search(rf'"organization_id" = {org.pk}\b', sql), sql
