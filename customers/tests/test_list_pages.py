"""The customer list's keyset pages: every sort reads each customer exactly once, in
the sort's order, ties broken by id, customers without a value last."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer
from customers.selectors import CUSTOMER_SORTS, customer_page, customers_active

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd(org):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with tenant_context(org):
        for i in range(37):
            CustomerFactory(
                external_id=f"c{i:02d}",
                last_name=f"N{i % 4}",  # ties
                orders_count=i % 3,
                total_spent=Decimal(i % 5),
                last_order_at=None if i % 4 == 0 else base + dt.timedelta(days=i % 6),
                created_at=base + dt.timedelta(hours=i % 7),
            )
    return org


def _expected(sort: str) -> list[int]:
    field, desc, nullable, _ = CUSTOMER_SORTS[sort]
    rows = list(customers_active().values_list(field, "pk"))
    valued = sorted((r for r in rows if r[0] is not None), reverse=desc)
    empty = sorted((r for r in rows if r[0] is None), key=lambda r: r[1], reverse=desc)
    return [pk for _, pk in valued + empty]


@pytest.mark.parametrize("sort", list(CUSTOMER_SORTS))
@pytest.mark.parametrize("size", [1, 5, 8])
def test_every_sort_pages_through_everyone_once_in_order(crowd, sort, size):
    with tenant_context(crowd):
        seen: list[int] = []
        after = ""
        for _ in range(100):
            rows, after = customer_page(customers_active(), sort=sort, after=after or "", size=size)
            seen += [c.pk for c in rows]
            if not after:
                break
        assert seen == _expected(sort)
        assert len(seen) == Customer.objects.count() == 37


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("mcd", {"mc1"}),
        ("MCDON", {"mc1"}),
        ("mCdOnAlD", {"mc1"}),
        ("smi", {"sm1", "sm2"}),
        ("Smith", {"sm1", "sm2"}),
        ("ada", {"sm1"}),
        ("ada smi", {"sm1"}),
        ("ADA.S", {"sm1"}),
        ("ada.smith@example.com", {"sm1"}),
        ("mc1", {"mc1"}),
        ("zz", set()),
        ("ß", {"ss1"}),
    ],
)
def test_search_ignores_case_from_the_first_letter(org, term, expected):
    from customers.selectors import customer_filter

    with tenant_context(org):
        CustomerFactory(external_id="mc1", first_name="Ewan", last_name="McDonald")
        CustomerFactory(
            external_id="sm1", first_name="Ada", last_name="Smith", email="ada.smith@example.com"
        )
        CustomerFactory(external_id="sm2", first_name="Bo", last_name="SMITHERS", email="")
        CustomerFactory(external_id="ss1", first_name="Jo", last_name="ßtrasse", email="")
        found = set(customer_filter({"search": term}).values_list("external_id", flat=True))
    assert found == expected
