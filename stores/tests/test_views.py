"""The Stores pages: an empty state that says what stores are for, adding, changing
and removing with the service's messages on the fields, viewers only reading, and
the link from Settings."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from stores.models import Store


@pytest.fixture
def soho(org):
    with tenant_context(org):
        return Store.objects.create(
            organization=org, name="Soho", latitude=51.5136, longitude=-0.1317,
            postal_prefixes=["W1D"],
        )  # fmt: skip


def test_empty_state_explains_stores(owner_client):
    page = owner_client.get("/stores/")
    assert page.status_code == 200
    assert "Add your shops so you can reach customers near them" in page.content.decode()
    assert "csrfmiddlewaretoken" in page.content.decode()


def test_settings_links_to_stores(owner_client):
    assert 'href="/stores/"' in owner_client.get(reverse("accounts:settings")).content.decode()


def test_add_a_store(owner_client, org):
    response = owner_client.post(
        "/stores/",
        {"name": "Brighton", "latitude": "50,8225", "longitude": "-0.1372",
         "postal_prefixes": "bn1, bn2 "},
    )  # fmt: skip
    assert response.status_code == 302
    with tenant_context(org):
        store = Store.objects.get()
    assert (store.latitude, store.longitude) == (50.8225, -0.1372)
    assert store.postal_prefixes == ["BN1", "BN2"]
    page = owner_client.get("/stores/").content.decode()
    assert "Brighton" in page and "BN1, BN2" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "latitude": "1", "longitude": "1"}, "Give the store a name."),
        ({"name": "X", "latitude": "100", "longitude": "1"}, "between -90 and 90"),
        ({"name": "X", "latitude": "51"}, "both the latitude and the longitude"),
        ({"name": "X"}, "Say where the store is"),
    ],
)
def test_bad_input_is_shown_on_the_form(owner_client, org, data, message):
    response = owner_client.post("/stores/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    with tenant_context(org):
        assert not Store.objects.exists()


def test_change_and_remove(owner_client, org, soho):
    page = owner_client.get(f"/stores/{soho.pk}/").content.decode()
    assert 'value="51.5136"' in page and 'value="W1D"' in page
    response = owner_client.post(
        f"/stores/{soho.pk}/",
        {"name": "Soho West", "address": "", "latitude": "", "longitude": "",
         "postal_prefixes": "W1D, W1F"},
    )  # fmt: skip
    assert response.status_code == 302
    soho.refresh_from_db()
    assert (soho.name, soho.latitude, soho.postal_prefixes) == ("Soho West", None, ["W1D", "W1F"])
    # no coordinates and no postcodes: refused, the store keeps its values
    response = owner_client.post(f"/stores/{soho.pk}/", {"name": "Soho West"})
    assert "Say where the store is" in response.content.decode()
    soho.refresh_from_db()
    assert soho.postal_prefixes == ["W1D", "W1F"]
    assert owner_client.post(f"/stores/{soho.pk}/delete/").status_code == 302
    with tenant_context(org):
        assert not Store.objects.exists()


def test_viewers_read_but_cannot_change(client, viewer, org, soho):
    client.force_login(viewer)
    page = client.get("/stores/").content.decode()
    assert "Soho" in page and "Add a store" not in page
    detail = client.get(f"/stores/{soho.pk}/").content.decode()
    assert "Only marketers, admins and owners can change stores." in detail
    assert (
        client.post("/stores/", {"name": "X", "latitude": "1", "longitude": "1"}).status_code == 403
    )
    assert client.post(f"/stores/{soho.pk}/", {"name": "Mine"}).status_code == 403
    assert client.post(f"/stores/{soho.pk}/delete/").status_code == 403
    soho.refresh_from_db()
    assert soho.name == "Soho"


def test_marketers_can_add(client, marketer, org):
    client.force_login(marketer)
    response = client.post("/stores/", {"name": "Stall", "postal_prefixes": "75001"})
    assert response.status_code == 302
    with tenant_context(org):
        assert Store.objects.get().postal_prefixes == ["75001"]
