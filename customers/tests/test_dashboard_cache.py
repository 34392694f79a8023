"""The dashboard's figures are kept per organisation until its data change (they read
every order and customer: 7 s a view at a million customers)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tenancy import tenant_context
from customers.models import Order
from customers.selectors import dashboard_summary

from .factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_figures_are_kept_until_the_data_change(org):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with tenant_context(org):
        customer = CustomerFactory()
        OrderFactory(customer=customer, total=Decimal("10.00"), status="paid")
        first = dashboard_summary(organization=org)
        assert first["orders_count"] == 1
        with CaptureQueriesContext(connection) as queries:
            assert dashboard_summary(organization=org) == first
        # the stamps (index ends) and the imports' count: no sum over the orders
        assert not [q for q in queries.captured_queries if "SUM(" in q["sql"].upper()]
        OrderFactory(customer=customer, total=Decimal("5.00"), status="paid")
        assert dashboard_summary(organization=org)["orders_count"] == 2
        Order.objects.filter(total=Decimal("5.00")).update(status="refunded")
        # an update through the ORM without updated_at is not seen until the figures
        # expire; the services all move updated_at (as this does)
        from django.utils import timezone

        Order.objects.filter(total=Decimal("5.00")).update(updated_at=timezone.now())
        assert dashboard_summary(organization=org)["orders_count"] == 1


def test_settings_the_figures_depend_on_are_in_the_key(org):
    with tenant_context(org):
        OrderFactory(customer=CustomerFactory(), total=Decimal("10.00"), status="paid")
        before = dashboard_summary(organization=org)
        org.revenue_basis = "with_shipping" if org.revenue_basis != "with_shipping" else "goods"
        org.save()
        assert dashboard_summary(organization=org)["revenue_basis"] == org.revenue_basis
        assert before["revenue_basis"] != org.revenue_basis


def test_each_organisation_has_its_own(org, other_org):
    with tenant_context(org):
        OrderFactory(customer=CustomerFactory(), total=Decimal("10.00"), status="paid")
        assert dashboard_summary(organization=org)["orders_count"] == 1
    with tenant_context(other_org):
        assert dashboard_summary(organization=other_org)["orders_count"] == 0
