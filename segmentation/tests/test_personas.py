"""Personas: the page, editing in place (htmx) and as a page, human-edit marks,
permissions, and what a re-run keeps."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from segmentation.models import Persona
from segmentation.services.personas import persona_update
from segmentation.services.segments import segmentation_run
from segmentation.tests.factories import planted_run


@pytest.fixture
def live(org):
    return planted_run(org)


@pytest.fixture
def persona(live, org):
    with tenant_context(org):
        return Persona.objects.select_related("segment").order_by("-segment__size").first()


def test_persona_is_written_from_the_profile(persona):
    assert persona.name and persona.summary
    assert persona.summary.startswith(persona.name)
    assert persona.traits and persona.actions and persona.motivations
    assert persona.value_level in {"high", "medium", "low"}
    assert persona.risk_level in {"high", "medium", "low"}
    assert persona.generated["name"] == persona.name
    assert persona.human_edited_fields == []


def test_personas_page_lists_every_live_persona(owner_client, live, org):
    response = owner_client.get("/segments/personas/")
    assert response.status_code == 200
    with tenant_context(org):
        for p in Persona.objects.all():
            assert p.name in response.content.decode()


def test_edit_in_place_with_htmx(owner_client, persona):
    form = owner_client.get(f"/segments/personas/{persona.pk}/edit/", HTTP_HX_REQUEST="true")
    assert form.status_code == 200
    assert b"<form" in form.content and b"extends" not in form.content
    assert f'value="{persona.name}"'.encode() in form.content
    response = owner_client.post(
        f"/segments/personas/{persona.pk}/edit/",
        {"name": "Rose lovers", "actions": "Send the rose catalogue\nInvite to the garden club"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Rose lovers" in html and "edited by a person" in html
    assert "Saved." in html
    persona.refresh_from_db()
    assert persona.actions == ["Send the rose catalogue", "Invite to the garden club"]
    assert sorted(persona.human_edited_fields) == ["actions", "name"]
    card = owner_client.get(f"/segments/personas/{persona.pk}/", HTTP_HX_REQUEST="true")
    assert b"Rose lovers" in card.content


def test_unchanged_fields_are_not_marked_human(owner_client, persona):
    owner_client.post(
        f"/segments/personas/{persona.pk}/edit/",
        {"name": persona.name, "summary": persona.summary, "risk": "Watch closely"},
    )
    persona.refresh_from_db()
    assert persona.human_edited_fields == ["risk"]


def test_edit_as_a_page_without_javascript(owner_client, persona):
    page = owner_client.get(f"/segments/personas/{persona.pk}/edit/")
    assert page.status_code == 200 and b"Edit persona" in page.content
    response = owner_client.post(
        f"/segments/personas/{persona.pk}/edit/", {"name": "Bargain hunters"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/segments/personas/"


def test_an_empty_name_is_refused(owner_client, persona):
    response = owner_client.post(f"/segments/personas/{persona.pk}/edit/", {"name": "  "})
    assert response.status_code == 400
    assert b"needs a name" in response.content
    persona.refresh_from_db()
    assert persona.name


def test_viewer_cannot_edit(client, viewer, persona):
    client.force_login(viewer)
    assert client.get(f"/segments/personas/{persona.pk}/edit/").status_code == 403
    assert client.post(f"/segments/personas/{persona.pk}/edit/", {"name": "x"}).status_code == 403
    page = client.get("/segments/personas/")
    assert page.status_code == 200 and b"/edit/" not in page.content


def test_marketer_can_edit(client, marketer, persona):
    client.force_login(marketer)
    response = client.post(f"/segments/personas/{persona.pk}/edit/", {"value": "Our best"})
    assert response.status_code == 302
    persona.refresh_from_db()
    assert persona.value == "Our best" and persona.updated_by == marketer


def test_every_edited_field_survives_a_rerun(persona, org, owner):
    edits = {
        "name": "N",
        "summary": "S",
        "traits": ["T"],
        "motivations": ["M"],
        "preferred_channel": "Post",
        "preferred_time": "Sunday mornings",
        "favourite_categories": ["Roses"],
        "favourite_products": ["Secateurs"],
        "value": "V",
        "risk": "R",
        "actions": ["A"],
    }
    with tenant_context(org):
        persona_update(persona=persona, data=edits, user=owner)
        segmentation_run(organization=org)
        persona.refresh_from_db()
    for name, value in edits.items():
        assert getattr(persona, name) == value, name
    assert set(persona.human_edited_fields) == set(edits)


def test_service_refuses_fields_that_are_not_editable(persona, org):
    with tenant_context(org), pytest.raises(ApplicationError, match="cannot be edited"):
        persona_update(persona=persona, data={"segment_id": 3})
