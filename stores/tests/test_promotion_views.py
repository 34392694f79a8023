"""The stores pages' local promotions: reach per store and the unplaced line on the
list, a store's reach on its page, the "within N km" and region actions creating
the right location audiences, and other organisations' stores answering 404."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from audiences.models import Audience
from customers.models import Customer
from stores.models import Store

LONDON = (51.5074, -0.1278)
CROYDON = (51.3762, -0.0982)  # 14.7 km from LONDON
BRIGHTON = (50.8225, -0.1372)  # 76 km


@pytest.fixture
def shop(org):
    with tenant_context(org):
        store = Store.objects.create(
            organization=org, name="Soho", latitude=LONDON[0], longitude=LONDON[1],
            postal_prefixes=["W1D"],
        )  # fmt: skip
        for key, lat, lon, extra in [
            ("near", LONDON[0] + 0.01, LONDON[1], {"accepts_email": True, "email": "a@x.test"}),
            ("croydon", *CROYDON, {}),
            ("brighton", *BRIGHTON, {}),
            ("blank", None, None, {}),
            ("w1d", None, None, {"postal_code": "W1D 3QF"}),
        ]:
            Customer.objects.create(
                organization=org, external_id=key, latitude=lat, longitude=lon, **extra
            )
    return store


def test_list_shows_reach_per_store_and_the_unplaced_line(owner_client, shop):
    page = owner_client.get("/stores/").content.decode()
    assert "Customers nearby" in page
    # within 5 km: "near" and "w1d" (a postcode the store serves); 25 km adds Croydon
    assert "2 within 5 km" in page and "2 within 10 km" in page and "3 within 25 km" in page
    assert (
        "2 customers could not be placed on the map: 1 has no coordinates, postcode or "
        "city and 1 has a postcode or city we cannot place" in page
    )
    assert "Start a local promotion" in page and "Promote in a region" in page


def test_store_page_shows_reach_and_the_unplaced_note(owner_client, shop):
    page = owner_client.get(f"/stores/{shop.pk}/").content.decode()
    assert "Customers near Soho" in page
    assert 'data-km="25" data-customers="3"' in page
    assert 'data-km="2" data-customers="2"' in page
    # only "blank" might be near: "w1d" is counted through the store's postcodes
    assert (
        "1 customer could not be placed: they have no coordinates, postcode or city we "
        "could locate." in page
    )
    assert "Start a local promotion" in page and 'name="promote-km"' in page


def test_empty_organisation_page_says_what_to_do(owner_client, org):
    with tenant_context(org):
        store = Store.objects.create(organization=org, name="New", latitude=1.0, longitude=1.0)
    page = owner_client.get(f"/stores/{store.pk}/").content.decode()
    assert "No customers yet" in page


def test_local_promotion_creates_the_location_audience(owner_client, org, shop):
    response = owner_client.post(f"/stores/{shop.pk}/promote/", {"promote-km": "5"})
    with tenant_context(org):
        audience = Audience.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audiences/{audience.pk}/"
    assert audience.definition == {"kind": "location", "store": shop.pk, "km": 5.0}
    assert audience.name == "Within 5 km of Soho"
    # the same again: the audience there is, not a copy
    again = owner_client.post(f"/stores/{shop.pk}/promote/", {"promote-km": "5"})
    assert again["Location"] == f"/audiences/{audience.pk}/"
    with tenant_context(org):
        assert Audience.objects.count() == 1
    # the store's page lists it with its next steps
    page = owner_client.get(f"/stores/{shop.pk}/").content.decode()
    assert "Within 5 km of Soho" in page
    assert f"/offers/new/?audience={audience.pk}" in page
    assert f"/campaigns/new/?audience={audience.pk}" in page


def test_local_promotion_distance_left_empty_is_ten_km(owner_client, org, shop):
    owner_client.post(f"/stores/{shop.pk}/promote/", {"promote-km": ""})
    with tenant_context(org):
        audience = Audience.objects.get()
    assert audience.definition["km"] == 10.0 and audience.name == "Within 10 km of Soho"


def test_local_promotion_with_a_name_and_a_bad_distance(owner_client, org, shop):
    bad = owner_client.post(f"/stores/{shop.pk}/promote/", {"promote-km": "-1"})
    assert bad.status_code == 400
    assert "Ensure this value is greater than or equal to 0.1" in bad.content.decode()
    owner_client.post(f"/stores/{shop.pk}/promote/", {"promote-km": "2", "promote-name": "Walk in"})
    with tenant_context(org):
        assert Audience.objects.get().name == "Walk in"
    taken = owner_client.post(
        f"/stores/{shop.pk}/promote/", {"promote-km": "3", "promote-name": "walk in"}
    )
    assert taken.status_code == 400 and "exists already" in taken.content.decode()


def test_region_promotion_creates_the_location_audience(owner_client, org, shop):
    response = owner_client.post(
        "/stores/promote/", {"region-regions": "Kent, Surrey", "region-postal_prefixes": "bn1"}
    )
    with tenant_context(org):
        audience = Audience.objects.get()
    assert response["Location"] == f"/audiences/{audience.pk}/"
    assert audience.definition == {
        "kind": "location",
        "regions": ["Kent", "Surrey"],
        "postal_prefixes": ["bn1"],
    }
    assert audience.name == "Customers in Kent, Surrey · postcodes bn1"
    empty = owner_client.post("/stores/promote/", {"region-name": "x"})
    assert empty.status_code == 400
    assert "Give at least one region, postcode beginning or country." in empty.content.decode()


def test_viewers_see_reach_but_cannot_promote(client, viewer, org, shop):
    client.force_login(viewer)
    page = client.get(f"/stores/{shop.pk}/").content.decode()
    assert "Customers near Soho" in page and 'name="promote-km"' not in page
    assert client.post(f"/stores/{shop.pk}/promote/", {"promote-km": "5"}).status_code == 403
    assert client.post("/stores/promote/", {"region-regions": "Kent"}).status_code == 403
    with tenant_context(org):
        assert not Audience.objects.exists()


def test_other_organisations_stores_are_404(owner_client, org, other_org):
    with tenant_context(other_org):
        theirs = Store.objects.create(
            organization=other_org, name="Rival", latitude=LONDON[0], longitude=LONDON[1]
        )
    assert owner_client.get(f"/stores/{theirs.pk}/").status_code == 404
    assert (
        owner_client.post(f"/stores/{theirs.pk}/promote/", {"promote-km": "5"}).status_code == 404
    )
    assert "Rival" not in owner_client.get("/stores/").content.decode()
    with tenant_context(org):
        assert not Audience.objects.exists()
