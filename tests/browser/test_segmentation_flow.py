"""Segments → run the segmentation → progress finishes and segments show → Personas →
rename a persona in place → marked as edited by a person and kept after a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from core.models import Job
from segmentation.models import Persona
from segmentation.tests.factories import planted_customers

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_segmentation_and_rename_a_persona(site, page, owner, org):
    planted_customers(org, n_customers=200)
    page.set_default_timeout(15_000)

    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")

    # Segments: nothing yet, the run button is offered.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="No segments yet")).to_be_visible()
    page.get_by_role("button", name="Find my segments").click()

    # The job's progress bar replaces nothing but the job area; it ends at done.
    # (Celery is eager in tests, so the run has finished when the response arrives.)
    progress = page.get_by_role("progressbar")
    expect(progress).to_be_visible()
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(".job-progress")).to_have_attribute("data-status", "succeeded")
    with tenant_context(org):
        job = Job.objects.get(kind="segments")
        assert job.status == "succeeded", job.message

    page.get_by_role("link", name="See the result").click()
    expect(page.get_by_text("Segments found by machine learning")).to_be_visible()
    expect(page.get_by_role("heading", name="No segments yet")).to_have_count(0)

    # Personas: one card per segment.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Personas").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Personas")
    with tenant_context(org):
        persona = Persona.objects.order_by("pk").first()
        assert persona is not None
        old_name = persona.name
    card = page.locator(f"#persona-{persona.pk}")
    expect(card.get_by_role("heading", level=3)).to_have_text(old_name)

    # Edit in place (htmx swaps the card for a form and back).
    card.get_by_role("link", name=f"Edit persona {old_name}").click()
    form = page.get_by_role("form", name=f"Edit persona “{old_name}”")
    expect(form).to_be_visible()
    expect(page).to_have_url(f"{site}/segments/personas/")  # still the personas page
    form.get_by_label("Name").fill("Weekend gift hunters")
    form.get_by_role("button", name="Save persona").click()

    card = page.locator(f"#persona-{persona.pk}")
    heading = card.get_by_role("heading", level=3)
    expect(heading).to_contain_text("Weekend gift hunters")
    expect(heading.get_by_text("edited by a person")).to_be_visible()
    expect(card.get_by_role("status")).to_contain_text("Saved.")

    # Kept after a reload, and in the database.
    page.reload()
    heading = page.locator(f"#persona-{persona.pk}").get_by_role("heading", level=3)
    expect(heading).to_contain_text("Weekend gift hunters")
    expect(heading.get_by_text("edited by a person")).to_be_visible()
    with tenant_context(org):
        persona.refresh_from_db()
    assert persona.name == "Weekend gift hunters"
    assert "name" in persona.human_edited_fields
