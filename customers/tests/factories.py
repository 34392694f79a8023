"""Factories for customer data, and `build_world` for the tenant-isolation sweep.

Factories create rows in the current tenant context (`in_org` fixture or
`tenant_context`); `organization` is filled from it by `TenantModel.save`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import factory
from django.utils import timezone

from accounts.tenancy import tenant_context
from customers.models import (
    ConsentChange,
    Customer,
    DeletedOrder,
    Event,
    Feedback,
    Import,
    Order,
    OrderLine,
    Product,
)

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "imports"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"factory-customer-{n}")
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    country = "GB"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    category = "Kitchen"
    price = Decimal("9.99")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"factory-order-{n}")
    customer = factory.SubFactory(CustomerFactory)
    ordered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=3))
    currency = ""  # naming none: the organisation's (another one's spend is never added)
    total = Decimal("19.98")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    sku = factory.LazyAttribute(lambda o: o.product.sku if o.product else "")
    product_name = factory.LazyAttribute(lambda o: o.product.name if o.product else "")
    quantity = 2
    unit_price = Decimal("9.99")
    amount = Decimal("19.98")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    external_id = factory.Sequence(lambda n: f"factory-event-{n}")
    customer = factory.SubFactory(CustomerFactory)
    type = "page_view"
    occurred_at = factory.LazyFunction(timezone.now)
    properties = factory.LazyFunction(lambda: {"page": "/"})


class ConsentChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentChange

    customer = factory.SubFactory(CustomerFactory)
    channel = "email"
    granted = True
    source = "test"


class FeedbackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feedback

    external_id = factory.Sequence(lambda n: f"factory-feedback-{n}")
    customer = factory.SubFactory(CustomerFactory)
    created_at = factory.LazyFunction(timezone.now)
    source = "review"
    rating = 4.0
    text = "Lovely mugs."


class ImportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Import

    kind = "orders"
    status = "succeeded"
    original_filename = "orders.csv"


def build_world(organization) -> None:
    """At least one row of every customers model for `organization`, reachable by
    every customers URL that takes an id (the isolation sweep requests them all).
    Safe to call more than once for the same organisation."""
    from core.jobs import job_start
    from customers.services import customer_update
    from customers.services.importing import import_from_path
    from customers.tasks import organization_export

    with tenant_context(organization):
        line = OrderLineFactory()
        customer = line.order.customer
        customer_update(customer=customer, data={"accepts_email": True}, source="world")
        EventFactory(customer=customer)
        FeedbackFactory(customer=customer)
        ConsentChangeFactory(customer=customer, channel="sms")
        DeletedOrder.objects.get_or_create(external_id="world-deleted-order")
        # An import with a rejected row, so its report and rejected-rows file exist.
        import_from_path(
            organization=organization,
            path=str(DATA / "orders_bad_rows.csv"),
            kind="orders",
            run_pipeline=False,
        )
        # A finished export of all data, so its download exists.
        job_start(organization=organization, kind="org_export", task=organization_export, sync=True)
        # What an erasure keeps (keyed hashes only; no route shows them).
        from customers.models import ErasedIdentifier

        ErasedIdentifier.objects.get_or_create(kind="id", digest="world-erased-digest")
        # A pipeline run's mark that the customer changed (read by ?updated_since=).
        from django.utils import timezone

        from customers.models import CustomerChange

        CustomerChange.objects.get_or_create(
            customer=customer, defaults={"changed_at": timezone.now()}
        )
