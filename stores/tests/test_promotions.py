"""Local promotions: each customer's nearest store on known coordinates (own
coordinates, a postcode area's centre, a postcode beginning alone, unplaced), and a
store's reach by radius with the unplaced counted and explained."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer
from stores.models import Store
from stores.promotions import nearest_stores

LONDON = (51.5074, -0.1278)
MANCHESTER = (53.4808, -2.2426)
EDINBURGH = (55.9533, -3.1883)
BRIGHTON = (50.8225, -0.1372)  # 76 km from London, far from the others
SALFORD = (53.4875, -2.2901)  # next to Manchester
LEITH = (55.9755, -3.1665)  # next to Edinburgh
YORK = (53.9600, -1.0873)  # 68 km from Manchester, 280 km from Edinburgh


@pytest.fixture
def world(org):
    with tenant_context(org):
        stores = {
            "london": Store.objects.create(
                organization=org, name="London", latitude=LONDON[0], longitude=LONDON[1],
                postal_prefixes=["SW1", "EC"],
            ),
            "manchester": Store.objects.create(
                organization=org, name="Manchester", latitude=MANCHESTER[0],
                longitude=MANCHESTER[1], postal_prefixes=["M1"],
            ),
            "edinburgh": Store.objects.create(
                organization=org, name="Edinburgh", latitude=EDINBURGH[0],
                longitude=EDINBURGH[1], postal_prefixes=["EH1"],
            ),
        }  # fmt: skip

        def customer(key, **fields):
            fields.setdefault("country", "GB")
            return Customer.objects.create(organization=org, external_id=key, **fields)

        people = {
            "brighton": customer("brighton", latitude=BRIGHTON[0], longitude=BRIGHTON[1]),
            "salford": customer("salford", latitude=SALFORD[0], longitude=SALFORD[1]),
            "leith": customer("leith", latitude=LEITH[0], longitude=LEITH[1]),
            "york": customer("york", latitude=YORK[0], longitude=YORK[1]),
            # York's postcode area has a customer with coordinates: placed at its centre
            "york_area": customer("york_area", postal_code="YO1 9XX"),
            "york_coords": customer(
                "york_coords", latitude=YORK[0], longitude=YORK[1], postal_code="YO1 7HH"
            ),
            # nobody else in M1 has coordinates, but the Manchester store serves M1
            "m1_only": customer("m1_only", postal_code="M1 4BT"),
            # nothing to go on
            "nowhere": customer("nowhere", postal_code="ZZ9 9ZZ", city="Atlantis"),
        }
    return stores, people


def test_nearest_store_by_distance_centre_and_postcode(org, world):
    stores, people = world
    with tenant_context(org):
        answer = nearest_stores(organization=org, customer_ids=[c.pk for c in people.values()])
    store_of = {key: answer[c.pk] for key, c in people.items()}
    assert store_of == {
        "brighton": stores["london"].pk,
        "salford": stores["manchester"].pk,
        "leith": stores["edinburgh"].pk,
        "york": stores["manchester"].pk,
        "york_area": stores["manchester"].pk,
        "york_coords": stores["manchester"].pk,
        "m1_only": stores["manchester"].pk,
        "nowhere": None,
    }


def test_unknown_other_org_and_erased_customers_get_none(org, other_org, world):
    from django.utils import timezone

    _stores, people = world
    with tenant_context(other_org):
        stranger = Customer.objects.create(
            organization=other_org, external_id="x", latitude=LONDON[0], longitude=LONDON[1]
        )
    with tenant_context(org):
        Customer.objects.filter(pk=people["leith"].pk).update(erased_at=timezone.now())
        answer = nearest_stores(
            organization=org, customer_ids=[stranger.pk, people["leith"].pk, 10**9]
        )
    assert answer == {stranger.pk: None, people["leith"].pk: None, 10**9: None}


def test_no_stores_or_no_customers(org, world):
    _stores, people = world
    with tenant_context(org):
        assert nearest_stores(organization=org, customer_ids=[]) == {}
        Store.objects.all().delete()
        assert nearest_stores(organization=org, customer_ids=[people["york"].pk]) == {
            people["york"].pk: None
        }


def test_stores_without_coordinates_decide_by_longest_postcode_beginning(org):
    with tenant_context(org):
        wide = Store.objects.create(organization=org, name="A wide", postal_prefixes=["SW"])
        narrow = Store.objects.create(organization=org, name="B narrow", postal_prefixes=["sw1a"])
        placed = Customer.objects.create(
            organization=org, external_id="p", latitude=LONDON[0], longitude=LONDON[1],
            postal_code="sw1a 1aa",
        )  # fmt: skip
        other = Customer.objects.create(organization=org, external_id="o", postal_code="SW9 1AA")
        none = Customer.objects.create(organization=org, external_id="n", postal_code="N1 1AA")
        answer = nearest_stores(organization=org, customer_ids=[placed.pk, other.pk, none.pk])
    assert answer == {placed.pk: narrow.pk, other.pk: wide.pk, none.pk: None}
