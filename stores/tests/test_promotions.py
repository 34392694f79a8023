"""Local promotions: each customer's nearest store on known coordinates (own
coordinates, a postcode area's centre, a postcode beginning alone, unplaced), and a
store's reach by radius with the unplaced counted and explained."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer
from stores.models import Store
from stores.promotions import nearest_stores, store_reach, stores_overview

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


# --- reach ------------------------------------------------------------------------------------------
def _preview(org, **definition):
    from audiences.services import audience_preview

    return audience_preview(organization=org, definition={"kind": "location", **definition})


def test_distance_filter_on_known_coordinates(org):
    """London to Paris is 343.6 km: a 343 km circle round a London store leaves a
    Paris customer out, a 344.5 km one takes them in (within 1 km of the truth)."""
    paris = (48.8566, 2.3522)
    with tenant_context(org):
        store = Store.objects.create(
            organization=org, name="London", latitude=LONDON[0], longitude=LONDON[1]
        )
        Customer.objects.create(
            organization=org, external_id="paris", latitude=paris[0], longitude=paris[1]
        )
        assert _preview(org, store=store.pk, km=343)["size"] == 0
        assert _preview(org, store=store.pk, km=344.5)["size"] == 1
        assert (
            _preview(org, near={"latitude": LONDON[0], "longitude": LONDON[1], "km": 344.5})["size"]
            == 1
        )
        reach = store_reach(organization=org, store=store, radii=(343, 344.5))
    assert [r["customers"] for r in reach["radii"]] == [0, 1]


def test_store_reach_counts_match_the_location_audience(org, world):
    stores, people = world
    with tenant_context(org):
        Customer.objects.filter(pk=people["salford"].pk).update(
            accepts_email=True, email="s@example.com", accepts_sms=True, phone="+447700900001"
        )
        # agreed to email, but has no address: not reachable
        Customer.objects.filter(pk=people["m1_only"].pk).update(accepts_email=True)
        Customer.objects.filter(pk=people["york"].pk).update(
            accepts_email=True, email="y@example.com"
        )
        reach = store_reach(organization=org, store=stores["manchester"], radii=(2, 10, 100))
        for row in reach["radii"]:
            preview = _preview(org, store=stores["manchester"].pk, km=row["km"])
            assert preview["size"] == row["customers"]
            assert preview["unplaced"] == reach["unplaced"]
    # salford (3.3 km) and m1_only (by postcode M1) within 10 km; York and the two
    # placed by York's postcode area within 100 km
    assert [(r["km"], r["customers"]) for r in reach["radii"]] == [
        (2.0, 1),
        (10.0, 2),
        (100.0, 5),
    ]
    assert reach["within"] == 2 and reach["km"] == 10
    assert reach["by_postcode_only"] == 1
    assert reach["reachable"] == {"email": 1, "sms": 1}
    assert reach["customers"] == 8
    assert reach["unplaced"] == 1  # "nowhere"
    assert reach["unplaced_note"] == (
        "1 customer could not be placed: they have no coordinates, postcode or city we "
        "could locate."
    )


def test_store_without_coordinates_reaches_by_postcode(org):
    with tenant_context(org):
        store = Store.objects.create(organization=org, name="Kiosk", postal_prefixes=["BN1"])
        Customer.objects.create(organization=org, external_id="a", postal_code="bn1 1aa")
        Customer.objects.create(organization=org, external_id="b", postal_code="BN2 1AA")
        Customer.objects.create(organization=org, external_id="c", city="Hove")
        reach = store_reach(organization=org, store=store)
        preview = _preview(org, store=store.pk, km=5)
    assert (preview["size"], preview["unplaced"]) == (1, 1)
    assert not reach["located"]
    assert {r["customers"] for r in reach["radii"]} == {1}
    assert reach["unplaced"] == 1
    assert "no postcode on record" in reach["unplaced_note"]


def test_reach_is_cached_until_the_data_changes(org, world):
    stores, _people = world
    with tenant_context(org):
        first = store_reach(organization=org, store=stores["london"])
        Customer.objects.create(
            organization=org, external_id="new", latitude=LONDON[0], longitude=LONDON[1]
        )
        again = store_reach(organization=org, store=stores["london"])
    assert again["within"] == first["within"] + 1


def test_overview_lists_every_store_and_the_placement_summary(org, world):
    stores, _people = world
    with tenant_context(org):
        overview = stores_overview(organization=org)
    closest = {pk: figures["closest"] for pk, figures in overview["stores"].items()}
    assert closest == {
        stores["london"].pk: 1,
        stores["manchester"].pk: 5,
        stores["edinburgh"].pk: 1,
    }
    assert overview["no_store"] == 1
    placement = overview["placement"]
    assert placement["own"] == 5 and placement["postcode"] == 1 and placement["city"] == 0
    # m1_only has a postcode nobody with coordinates shares; nowhere has a postcode too
    assert placement["unplaced"] == 2 and placement["unplaced_unknown_area"] == 2
    assert overview["placement_sentence"] == (
        "2 customers could not be placed on the map: 2 have a postcode or city we cannot "
        "place (no customer with coordinates shares it)."
    )


def test_overview_is_per_organisation(org, other_org, world):
    with tenant_context(other_org):
        Store.objects.create(organization=other_org, name="Rival", latitude=1.0, longitude=1.0)
        theirs = stores_overview(organization=other_org)
    with tenant_context(org):
        ours = stores_overview(organization=org)
    assert len(theirs["stores"]) == 1 and theirs["placement"]["customers"] == 0
    assert len(ours["stores"]) == 3 and ours["placement"]["customers"] == 8
