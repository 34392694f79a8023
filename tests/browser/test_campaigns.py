"""Campaigns → build one for two segments with a starter draft for each persona →
preview it as a customer at computer (600 px) and phone (375 px) widths → send →
open the message in the outbox → follow its tracked link → the results count the
click."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(org, owner, settings):
    """Two segments of four customers each (all accept email), a persona for each."""
    from campaigns.tests import sendworld

    settings.EMAIL_BACKEND = "campaigns.backends.OutboxEmailBackend"
    with tenant_context(org):
        regulars = sendworld.customers(org, 4, "reg")
        newcomers = sendworld.customers(org, 4, "new")
        segs = sendworld.segments(org, {"Regulars": regulars, "Newcomers": newcomers})
        for s, n in zip(segs.values(), (4, 4), strict=True):
            s.size = n
            s.save(update_fields=["size"])
        sendworld.persona(org, segs["Regulars"], name="Loyal regular")
        sendworld.persona(org, segs["Newcomers"], name="Curious newcomer")
    return segs


def _frame_width(page) -> float:
    return page.locator("iframe.preview-frame").bounding_box()["width"]


def test_build_preview_send_and_track_a_campaign(site, page, owner, org, shop):
    page.set_default_timeout(15_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    expect(page.get_by_role("heading", name="No campaigns yet")).to_be_visible()
    page.get_by_role("link", name="Create your first campaign").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New campaign")

    page.get_by_label("Name", exact=True).fill("Spring news")
    page.get_by_label("Goal").fill("Bring customers back for the spring range")
    segments = page.get_by_role("group", name="Segments")
    segments.get_by_label("Regulars").check()
    segments.get_by_label("Newcomers").check()
    page.get_by_label("Subject").fill("Spring is here, {{ first_name }}")
    page.get_by_role("textbox", name="Message", exact=True).fill(
        "Hi {{ first_name }},\n\nSee what is new: https://shop.example/spring"
    )
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring news")

    # a starter draft for each persona
    for name, persona in (
        ("For regulars", "Loyal regular (Regulars)"),
        ("For newcomers", "Curious newcomer (Newcomers)"),
    ):
        page.locator("#add-variant > summary").click()
        form = page.locator("#add-variant form")
        form.get_by_label("For a persona").check()
        form.get_by_label("Name", exact=True).fill(name)
        form.get_by_label("Persona", exact=True).select_option(label=persona)
        form.get_by_label("Write a starter draft from the persona").check()
        form.get_by_role("button", name="Add this version").click()
        expect(page.get_by_role("heading", name=re.compile(name))).to_be_visible()
    expect(page.get_by_text("Starter draft — edit before sending")).to_have_count(2)

    # the owner makes the regulars' draft their own: a link to the spring range
    page.locator(".variant", has_text="For regulars").get_by_role(
        "link", name="Edit the words"
    ).click()
    body = page.get_by_role("textbox", name="Message", exact=True)
    body.fill(body.input_value() + "\n\nThe spring range: https://shop.example/spring")
    page.get_by_role("button", name="Save the words").click()
    expect(page.get_by_text("Starter draft — edit before sending")).to_have_count(1)

    # the preview, at computer and phone widths
    frame = page.locator("iframe.preview-frame")
    expect(frame).to_be_visible()
    assert _frame_width(page) == 600
    page.get_by_role("button", name="Phone (375 px)").click()
    expect(page.get_by_role("button", name="Phone (375 px)")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert _frame_width(page) == 375
    page.get_by_role("button", name="Computer (600 px)").click()
    expect(page.get_by_role("button", name="Computer (600 px)")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert _frame_width(page) == 600

    # send (the page asks first)
    expect(page.locator("#send .stat-value").first).to_have_text("8")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_role("heading", name="Results")).to_be_visible()
    expect(page.locator('[data-stat="clicked"]')).to_have_text("0")
    with tenant_context(org):
        campaign = Campaign.objects.get()
    assert campaign.status == "sent"

    # the outbox has the message; its tracked link leads to the shop
    page.goto(f"{site}/campaigns/outbox/")
    page.locator(".outbox-item", has_text="reg0@example.com").get_by_role("link").click()
    text = page.locator("pre.outbox-text").inner_text()
    tracked = re.search(r"https?://\S+/m/c/\S+", text)
    assert tracked, text
    # nothing outside this machine is reachable: follow the tracked link one hop and
    # check where it sends the customer
    response = page.request.get(tracked.group(0).rstrip(".,)>"), max_redirects=0)
    assert response.status in (302, 303, 307)
    assert response.headers["location"] == "https://shop.example/spring"

    page.goto(f"{site}/campaigns/{campaign.pk}/")
    expect(page.locator('[data-stat="clicked"]')).to_have_text("1")


def test_the_builder_counts_sms_length_as_you_type(site, page, owner, org, shop):
    page.set_default_timeout(15_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site}/campaigns/new/")
    page.get_by_label("SMS").check()
    expect(page.get_by_label("Subject")).to_be_hidden()
    page.get_by_role("textbox", name="Message", exact=True).fill("x" * 161)
    expect(page.locator("#sms-count")).to_contain_text("161 characters · 2 SMS parts")
