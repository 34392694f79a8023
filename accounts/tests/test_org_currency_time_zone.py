"""New organisations choose a currency (ISO 4217) and an IANA time zone from
lists, preselected from the browser, and the server refuses anything else
(issue 9: free-text fields defaulting to USD and UTC)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Organization

pytestmark = pytest.mark.django_db

SIGN_UP = {
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "organization_name": "Engines Ltd",
    "password": "a-long-enough-password",
}


def _select(html: str, name: str) -> str:
    start = html.index(f'name="{name}"')
    return html[html.rindex("<select", 0, start) : html.index("</select>", start)]


@pytest.mark.parametrize("route", ["accounts:signup", "accounts:organization_new"])
def test_new_organisation_forms_offer_lists_and_browser_defaults(route, client, owner):
    if route != "accounts:signup":
        client.force_login(owner)
    html = client.get(reverse(route)).content.decode()
    zones = _select(html, "time_zone")
    currencies = _select(html, "currency")
    assert 'value="Europe/London"' in zones and 'value="America/New_York"' in zones
    assert 'value="GBP"' in currencies and 'value="EUR"' in currencies
    assert 'data-browser-default="time_zone"' in zones
    assert 'data-browser-default="currency"' in currencies
    assert "js/org-defaults.js" in html
    script = (Path(settings.BASE_DIR) / "static/js/org-defaults.js").read_text()
    assert "resolvedOptions().timeZone" in script and "navigator.language" in script


def test_sign_up_stores_the_chosen_zone_and_currency(client):
    response = client.post(
        reverse("accounts:signup"), {**SIGN_UP, "time_zone": "Europe/Paris", "currency": "EUR"}
    )
    assert response.status_code == 302
    org = Organization.objects.get(name="Engines Ltd")
    assert (org.time_zone, org.currency) == ("Europe/Paris", "EUR")


@pytest.mark.parametrize(
    "field,value", [("currency", "ZZZ"), ("currency", ""), ("time_zone", "Mars/Olympus")]
)
def test_sign_up_refuses_an_unknown_zone_or_currency(client, field, value):
    data = {**SIGN_UP, "time_zone": "Europe/Paris", "currency": "EUR", field: value}
    response = client.post(reverse("accounts:signup"), data)
    assert response.status_code == 200
    assert not Organization.objects.filter(name="Engines Ltd").exists()


def test_settings_offer_lists_and_refuse_an_unknown_currency(owner_client, org):
    html = owner_client.get(reverse("accounts:settings")).content.decode()
    assert 'value="GBP"' in _select(html, "currency")
    assert 'value="Europe/London"' in _select(html, "time_zone")
    response = owner_client.post(
        reverse("accounts:settings"),
        {"name": org.name, "time_zone": org.time_zone, "currency": "ABC"},
        follow=True,
    )
    assert "Unknown currency" in response.content.decode()
    org.refresh_from_db()
    assert org.currency != "ABC"


def test_create_org_validates_the_same(db):
    with pytest.raises(SystemExit):
        call_command(
            "create_org",
            "--name",
            "Bad",
            "--owner",
            "b@example.com",
            "--currency",
            "XXQ",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    with pytest.raises(SystemExit):
        call_command(
            "create_org",
            "--name",
            "Bad",
            "--owner",
            "b@example.com",
            "--time-zone",
            "Nowhere",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert not Organization.objects.filter(name="Bad").exists()
    out = StringIO()
    call_command(
        "create_org",
        "--name",
        "Good",
        "--owner",
        "g@example.com",
        "--currency",
        "gbp",
        "--time-zone",
        "Europe/London",
        stdout=out,
    )
    assert json.loads(out.getvalue().strip().splitlines()[-1])["slug"]
    assert Organization.objects.get(name="Good").currency == "GBP"
