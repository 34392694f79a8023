"""Saving a persona goes back to `next` only when it is an address on this site:
`…/edit/?next=https://evil.example/` must not send the owner to another site
(open redirect), and the Cancel link must not carry a `javascript:` address."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from segmentation.models import Persona
from segmentation.tests.factories import planted_run

HOSTILE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "javascript:alert(1)",
    "http://testserver.evil.example/",
]


@pytest.fixture
def persona(org):
    planted_run(org)
    with tenant_context(org):
        return Persona.objects.order_by("pk").first()


@pytest.mark.parametrize("target", HOSTILE)
def test_saving_never_redirects_off_site(owner_client, persona, target):
    url = f"/segments/personas/{persona.pk}/edit/"
    response = owner_client.post(url, {"name": "Rose lovers", "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/segments/personas/"


@pytest.mark.parametrize("target", HOSTILE)
def test_the_edit_page_does_not_link_to_a_hostile_next(owner_client, persona, target):
    html = owner_client.get(
        f"/segments/personas/{persona.pk}/edit/", {"next": target}
    ).content.decode()
    assert "evil.example" not in html and "javascript:" not in html


def test_a_local_next_is_followed(owner_client, persona):
    here = f"/segments/{persona.segment_id}/?tab=persona"
    response = owner_client.post(
        f"/segments/personas/{persona.pk}/edit/", {"name": "Rose lovers", "next": here}
    )
    assert response["Location"] == here
    html = owner_client.get(
        f"/segments/personas/{persona.pk}/edit/", {"next": here}
    ).content.decode()
    assert 'href="/segments/' in html


def test_production_requires_https_for_next(rf, settings):
    from core.web import safe_next_url

    settings.PRODUCTION = True
    request = rf.get("/x/", {"next": "http://testserver/jobs/"})
    assert safe_next_url(request, default="/") == "/"
    request = rf.get("/x/", {"next": "/jobs/"})
    assert safe_next_url(request, default="/") == "/jobs/"


@pytest.mark.parametrize("target", ["x", "personas", "jobs.html", "?page=2"])
def test_a_next_that_is_not_an_address_goes_to_the_default(owner_client, persona, target):
    # redirect() would try these as view names and fail (500) rather than redirect
    url = f"/segments/personas/{persona.pk}/edit/"
    response = owner_client.post(url, {"name": "Rose lovers", "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/segments/personas/"
