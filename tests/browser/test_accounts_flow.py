"""Sign-up → second organisation → invite → the colleague joins → switch organisation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_up_invite_and_switch_organisation(site, new_context, mailoutbox, link_in):
    owner = new_context().new_page()

    # Sign up: the same "check your inbox" page whether or not the address is taken.
    owner.goto(f"{site}/accounts/signup/")
    owner.get_by_label("Your name").fill("Olive Owner")
    owner.get_by_label("Work email").fill("olive@example.com")
    owner.get_by_label("Business name").fill("Olive Oils")
    owner.get_by_label("Password").fill("pressed-cold-2026")
    owner.get_by_role("button", name="Create account").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    expect(owner.get_by_text("We sent an email to olive@example.com")).to_be_visible()

    # Confirm the email address with the emailed link, then sign in: the new
    # organisation's dashboard opens.
    (verification,) = mailoutbox
    owner.goto(site + link_in(verification, "/accounts/verify/"))
    expect(owner.get_by_text("olive@example.com is confirmed")).to_be_visible()
    owner.get_by_label("Email").fill("olive@example.com")
    owner.get_by_label("Password").fill("pressed-cold-2026")
    owner.get_by_role("button", name="Sign in").click()
    expect(owner).to_have_url(f"{site}/")
    expect(owner.get_by_role("heading", level=1)).to_have_text("Olive Oils")

    # A second organisation, from the profile page.
    owner.get_by_text("Olive", exact=True).click()  # the user menu
    owner.get_by_role("link", name="Your account").click()
    owner.get_by_role("link", name="Create another organisation").click()
    owner.get_by_label("Business name").fill("Vinegar Works")
    owner.get_by_role("button", name="Create organisation").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text("Vinegar Works")
    expect(owner.get_by_label("Organisation")).to_have_value("vinegar-works")

    # Invite a colleague from Settings → Members.
    owner.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    owner.get_by_role("link", name="Members").click()
    owner.get_by_label("Email").fill("colin@example.com")
    owner.get_by_label("Role").select_option("marketer")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Invitation sent to colin@example.com")).to_be_visible()
    expect(owner.get_by_role("cell", name="colin@example.com", exact=True)).to_be_visible()

    invitation = mailoutbox[-1]
    assert invitation.to == ["colin@example.com"]
    link = link_in(invitation, "/accounts/invitations/")

    # The colleague opens the link in a fresh browser, creates an account and joins.
    colleague = new_context().new_page()
    colleague.goto(site + link)
    expect(colleague.get_by_role("heading", level=1)).to_have_text("Join Vinegar Works")
    colleague.get_by_label("Your name").fill("Colin Colleague")
    colleague.get_by_label("Password").fill("colin-secret-2026")
    colleague.get_by_role("button", name="Create account and join").click()
    expect(colleague).to_have_url(f"{site}/")
    expect(colleague.get_by_role("heading", level=1)).to_have_text("Vinegar Works")
    expect(colleague.get_by_text("Welcome to Vinegar Works.")).to_be_visible()

    colin = User.objects.get(email="colin@example.com")
    assert list(
        Membership.objects.filter(user=colin).values_list("organization__name", "role")
    ) == [("Vinegar Works", Role.MARKETER)]

    # The owner switches organisation with the switcher in the top bar.
    owner.goto(f"{site}/")
    owner.get_by_label("Organisation").select_option(label="Olive Oils")
    expect(owner.get_by_role("heading", level=1)).to_have_text("Olive Oils")
    expect(owner.get_by_text("Switched to Olive Oils.")).to_be_visible()
    expect(owner.get_by_label("Organisation")).to_have_value("olive-oils")
    assert Organization.objects.count() == 2


def test_keyboard_reaches_skip_link_first_and_the_main_nav(site, page, owner):
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")

    page.goto(f"{site}/")
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to content")
    expect(focused).to_be_in_viewport()  # it shows itself when focused
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))

    # Tab on from the top until the main navigation's links are reached.
    page.goto(f"{site}/")
    nav_links = page.get_by_role("navigation", name="Main").get_by_role("link")
    labels = nav_links.all_inner_texts()
    assert "Settings" in labels
    reached = []
    for _ in range(30):
        page.keyboard.press("Tab")
        text = page.evaluate(
            "() => document.activeElement.closest('nav.sidenav') ? "
            "document.activeElement.textContent.trim() : null"
        )
        if text:
            reached.append(text)
        if reached and text is None:
            break
    assert reached == labels
    # And a link is followed with the keyboard.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
