"""Location audiences: customers placed by their coordinates, else their postcode
area's or city's centre; chosen by distance (a point, or a store with its
postcodes), country, region and postcode; unplaced counted; erased never included.

Distances are checked against known great-circle figures (London to Paris is
about 344 km, London to Brighton about 76 km)."""

from __future__ import annotations

import numpy as np
import pytest

from accounts.tenancy import tenant_context
from audiences.services import audience_preview
from core.exceptions import ApplicationError
from customers.models import Customer
from stores.geo import (
    Customers,
    country_key,
    haversine_km,
    location_evaluation,
    location_select,
    placements,
    postcode_area,
)
from stores.models import Store

LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)
BRIGHTON = (50.8225, -0.1372)


def test_haversine_known_distances():
    d = haversine_km(np.array([LONDON[0], BRIGHTON[0]]), np.array([LONDON[1], BRIGHTON[1]]), *PARIS)
    assert d[0] == pytest.approx(343.6, abs=1.5)
    assert haversine_km(np.array([BRIGHTON[0]]), np.array([BRIGHTON[1]]), *LONDON)[
        0
    ] == pytest.approx(76, abs=1.5)
    assert np.isnan(haversine_km(np.array([np.nan]), np.array([np.nan]), *LONDON)[0])


@pytest.mark.parametrize(
    ("code", "area"),
    [("SW1A 1AA", "SW1A"), ("sw1a1aa", "SW1"), ("75001", "750"), (" 90210 ", "902"), ("", "")],
)
def test_postcode_area(code, area):
    assert postcode_area(code) == area


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("GB", "GB"),
        ("gb", "GB"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("Britain", "GB"),
        ("England", "GB"),
        ("united states", "US"),
        ("USA", "US"),
        ("Côte d'Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("the Netherlands", "NL"),
        ("Bosnia and Herzegovina", "BA"),
        ("Saint Lucia", "LC"),
        ("france ", "FR"),
        ("Korea", "korea"),  # North or South: not guessed
        ("Atlantis", "atlantis"),  # unknown names still match themselves
        ("", ""),
    ],
)
def test_country_key(text, key):
    assert country_key(text) == key


def test_placement_order_own_then_postcode_area_then_city():
    lat = np.array([51.52, np.nan, np.nan, 50.82, np.nan, np.nan, 0.0])
    lon = np.array([-0.10, np.nan, np.nan, -0.14, np.nan, np.nan, 0.0])
    codes = ["SW1A 1AA", "SW1A 2BB", "SW1A 3CC", "BN1 1AA", "", "ZZ9 9ZZ", ""]
    cities = ["London", "", "Brighton", "Brighton", "brighton", "", ""]
    countries = ["GB", "GB", "FR", "GB", "GB", "GB", "GB"]
    placed = placements(lat, lon, codes, cities, countries)
    assert list(placed.how) == [1, 2, 0, 1, 3, 0, 0]
    # the postcode area's centre is its one located customer
    assert (placed.latitude[1], placed.longitude[1]) == pytest.approx((51.52, -0.10))
    # same postcode area in another country is another area; its city is too
    assert np.isnan(placed.latitude[2])
    assert (placed.latitude[4], placed.longitude[4]) == pytest.approx((50.82, -0.14))
    # 0, 0 is a default, not a place: the last customer is unplaced (how 0 above)


def test_group_centre_is_the_middle_across_the_date_line():
    lat = np.array([-17.0, -17.0, np.nan])
    lon = np.array([179.0, -179.0, np.nan])
    placed = placements(lat, lon, ["FJ1 1", "FJ1 2", "FJ1 3"], ["", "", ""], ["FJ"] * 3)
    assert placed.how[2] == 2
    assert abs(placed.longitude[2]) == pytest.approx(180.0, abs=0.01)
    assert placed.latitude[2] == pytest.approx(-17.0, abs=0.01)


def test_select_on_100k_customers_keeps_its_promises():
    rng = np.random.default_rng(7)
    n = 100_000
    lat = rng.uniform(49.9, 58.6, n)
    lon = rng.uniform(-6.0, 1.7, n)
    lat[::3] = np.nan  # a third without coordinates
    lon[::3] = np.nan
    codes = [f"A{i % 500} {i % 9}X" if i % 5 else "" for i in range(n)]
    customers = Customers(
        ids=np.arange(1, n + 1),
        latitude=lat,
        longitude=lon,
        postal_codes=codes,
        cities=[f"Town {i % 300}" if i % 7 else "" for i in range(n)],
        regions=[""] * n,
        countries=["United Kingdom" if i % 2 else "GB" for i in range(n)],
    )
    definition = {
        "kind": "location",
        "near": {"latitude": LONDON[0], "longitude": LONDON[1], "km": 50},
    }
    selection = location_select(definition, customers)
    assert selection.chosen.sum() > 0
    assert not (selection.chosen & selection.undecided).any()
    placed = ~np.isnan(selection.distance_km)
    assert (selection.distance_km[selection.chosen] <= 50).all()
    assert placed.sum() > 2 * n // 3


@pytest.fixture
def town(org):
    """Customers of Acme Gifts around London, Brighton and Paris, and one store."""
    with tenant_context(org):
        store = Store.objects.create(
            organization=org,
            name="Soho",
            latitude=LONDON[0],
            longitude=LONDON[1],
            postal_prefixes=["W1"],
        )

        def customer(key, **fields):
            return Customer.objects.create(organization=org, external_id=key, **fields)

        people = {
            # own coordinates, about 2 km from the point
            "a": customer("a", latitude=51.52, longitude=-0.10, postal_code="SW1A 1AA",
                          city="London", country="United Kingdom"),
            "b": customer("b", latitude=BRIGHTON[0], longitude=BRIGHTON[1],
                          postal_code="BN1 1AA", city="Brighton", country="GB"),
            # placed at a's postcode area (SW1A)
            "c": customer("c", postal_code="SW1A 2BB", country="gb"),
            # placed at Brighton's centre by city
            "d": customer("d", city="brighton", country="GB"),
            # no located neighbour, but inside the store's postcodes (W1)
            "e": customer("e", postal_code="W1D 3QF", country="GB"),
            # nothing to place them by
            "f": customer("f"),
            "g": customer("g", latitude=PARIS[0], longitude=PARIS[1], postal_code="75001",
                          region="Île-de-France", country="France"),
            # erased: never in an audience, even though at the very point
            "h": customer("h", latitude=LONDON[0], longitude=LONDON[1], country="GB",
                          postal_code="W1A 1AA", erased_at="2024-01-01T00:00:00Z"),
            # placed at g's postcode area: France written as a code
            "i": customer("i", postal_code="75002", country="FR", region="ile-de-france"),
            # exactly at the point: nearest of all
            "j": customer("j", latitude=LONDON[0], longitude=LONDON[1], country="England",
                          postal_code="EC1A 1BB"),
        }  # fmt: skip
    return {"store": store, **people}


def _run(org, **definition):
    with tenant_context(org):
        return location_evaluation({"kind": "location", **definition}, organization=org)


def _names(town, evaluation):
    by_pk = {c.pk: key for key, c in town.items() if key != "store"}
    return [by_pk[pk] for pk in evaluation.scores]


def test_near_a_point_nearest_first_with_unplaced(org, town):
    result = _run(org, near={"latitude": LONDON[0], "longitude": LONDON[1], "km": 10})
    # j at the point; a and c the same 2.3 km (c placed at a's area), then by id
    assert _names(town, result) == ["j", "a", "c"]
    assert set(result.scores.values()) == {None}
    # e (postcode area with no located customer) and f (nothing) cannot be placed
    assert result.unplaced == 2
    assert result.notes == [
        "2 customers could not be placed: they have no coordinates, postcode or city we "
        "could locate."
    ]


def test_near_reaches_brighton_at_100_km(org, town):
    result = _run(org, near={"latitude": LONDON[0], "longitude": LONDON[1], "km": 100})
    assert _names(town, result) == ["j", "a", "c", "b", "d"]


def test_store_counts_its_postcodes_as_near(org, town):
    result = _run(org, store=town["store"].pk, km=10)
    # e has no place but its postcode starts with the store's W1: near, after the others
    assert _names(town, result) == ["j", "a", "c", "e"]
    assert result.unplaced == 1  # f only
    assert result.notes[0].startswith("1 customer could not be placed")


def test_store_with_postcodes_only(org, town):
    with tenant_context(org):
        stall = Store.objects.create(organization=org, name="Stall", postal_prefixes=["BN1"])
    result = _run(org, store=stall.pk, km=5)
    assert _names(town, result) == ["b"]
    # without the store's coordinates only a postcode decides: d and f have none
    assert result.unplaced == 2
    assert result.notes == ["2 customers could not be placed: they have no postcode on record."]


def test_a_store_of_another_organisation_is_refused(org, other_org, town):
    with tenant_context(other_org):
        theirs = Store.objects.create(organization=other_org, name="R", latitude=1, longitude=1)
    with pytest.raises(ApplicationError) as caught:
        _run(org, store=theirs.pk, km=10)
    assert caught.value.extra["fields"] == {"store": f"There is no store {theirs.pk}."}


def test_countries_by_code_or_name_any_case(org, town):
    result = _run(org, countries=["uk"])
    assert _names(town, result) == ["a", "b", "c", "d", "e", "j"]  # by id
    assert result.unplaced == 1  # f has no country
    assert result.notes == ["1 customer could not be placed: they have no country on record."]
    assert _names(town, _run(org, countries=["France"])) == ["g", "i"]
    assert _names(town, _run(org, countries=["fr", "Deutschland"])) == ["g", "i"]


def test_regions_and_postal_prefixes(org, town):
    assert _names(town, _run(org, regions=["ÎLE-DE-FRANCE"])) == ["g", "i"]
    result = _run(org, postal_prefixes=["sw1a"])
    assert _names(town, result) == ["a", "c"]
    assert result.unplaced == 2  # d and f have no postcode


def test_every_criterion_must_match(org, town):
    assert _names(town, _run(org, countries=["GB"], postal_prefixes=["BN1"])) == ["b"]
    result = _run(org, near={"latitude": PARIS[0], "longitude": PARIS[1], "km": 50},
                  countries=["GB"])  # fmt: skip
    assert result.scores == {}
    # e (GB, but no place) and f (no place, no country) might belong; the others are
    # ruled out by distance or by country
    assert result.unplaced == 2
    assert result.notes == [
        "2 customers could not be placed: they have no coordinates, postcode or city we "
        "could locate, or no country on record."
    ]


def test_preview_through_the_audiences_service(org, town):
    with tenant_context(org):
        preview = audience_preview(
            organization=org,
            definition={"kind": "location", "store": town["store"].pk, "km": 10},
        )
    assert preview["size"] == 4
    assert preview["unplaced"] == 1
    assert town["h"].pk not in preview["sample"]
    assert preview["sample"][0] == town["j"].pk


def test_an_organisation_without_customers(org):
    result = _run(org, near={"latitude": LONDON[0], "longitude": LONDON[1], "km": 10})
    assert (result.scores, result.unplaced, result.notes) == ({}, 0, [])
    assert _run(org, countries=["GB"]).scores == {}


def test_preview_through_the_api(api, org, town):
    response = api.post(
        "/api/v1/audiences/preview/",
        {
            "definition": {
                "kind": "location",
                "countries": ["United Kingdom"],
                "postal_prefixes": ["SW1A"],
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["size"], body["unplaced"]) == (2, 2)  # a and c; d and f have no postcode
