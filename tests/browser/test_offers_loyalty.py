"""Loyalty and offers as an owner uses them: set up a Bronze/Silver/Gold programme
and see a customer's tier on their page; create an offer for a segment, open it in
a campaign and see the customer's own code in the campaign's preview."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from customers.tests.factories import OrderLineFactory
from offers.models import OfferRecipient

pytestmark = pytest.mark.django_db(transaction=True)

CODE = re.compile(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")


@pytest.fixture
def shop(org, owner, settings):
    """Two segments of three customers each who accept email; the first regular has
    spent 600, the others 20 each."""
    from campaigns.tests import sendworld

    settings.EMAIL_BACKEND = "campaigns.backends.OutboxEmailBackend"
    with tenant_context(org):
        regulars = sendworld.customers(org, 3, "reg")
        newcomers = sendworld.customers(org, 3, "new")
        for person in regulars + newcomers:
            spent = Decimal("600") if person is regulars[0] else Decimal("20")
            OrderLineFactory(
                order__organization=org,
                order__customer=person,
                order__total=spent,
                product__organization=org,
                organization=org,
                amount=spent,
                unit_price=spent,
                quantity=1,
            )
        segs = sendworld.segments(org, {"Regulars": regulars, "Newcomers": newcomers})
        for s in segs.values():
            s.size = 3
            s.save(update_fields=["size"])
    return {"regulars": regulars, "segments": segs}


def _sign_in(page, site, owner):
    page.set_default_timeout(20_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def test_a_loyalty_programme_places_a_customer_in_a_tier(site, page, owner, org, shop):
    _sign_in(page, site, owner)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Loyalty").click()
    page.get_by_role("link", name="Set up your programme").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up your loyalty programme")
    page.get_by_role("radio", name="Amount spent").check()
    page.get_by_label("Counted over the last (days)").fill("365")
    rows = page.locator(".tier-row")
    for i, (name, threshold) in enumerate((("Bronze", "10"), ("Silver", "100"), ("Gold", "500"))):
        rows.nth(i).get_by_label("Tier name").fill(name)
        rows.nth(i).get_by_label(re.compile("Reached at")).fill(threshold)
    for i in range(3, rows.count()):
        rows.nth(i).get_by_label("Tier name").fill("")
        rows.nth(i).get_by_label(re.compile("Reached at")).fill("")
    page.get_by_role("button", name="Save the programme").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Loyalty"))
    expect(page.get_by_text(re.compile("reach Gold after spending"))).to_be_visible()

    big = shop["regulars"][0]
    page.goto(f"{site}/customers/{big.pk}/")
    expect(page.locator('[data-tier="Gold"]')).to_be_visible()
    expect(page.locator("[data-points]")).to_have_attribute("data-points", "600")
    page.goto(f"{site}/customers/{shop['regulars'][1].pk}/")
    expect(page.locator('[data-tier="Bronze"]')).to_be_visible()
    expect(page.get_by_text(re.compile("more to reach Silver"))).to_be_visible()


def test_an_offer_for_a_segment_shows_in_a_campaign_preview(site, page, owner, org, shop):
    _sign_in(page, site, owner)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Offers").click()
    page.goto(f"{site}/offers/new/")
    page.get_by_label("Name", exact=True).fill("Spring 10% off")
    page.get_by_label("A percentage off").check()
    page.get_by_label("How much off").fill("10")
    page.get_by_role("group", name="Segments").get_by_label("Regulars").check()
    page.get_by_role("button", name="Save and make the codes").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring 10% off")
    expect(page.get_by_role("link", name="Use in a campaign")).to_be_visible()
    with tenant_context(org):
        codes = dict(OfferRecipient.objects.exclude(code="").values_list("customer_id", "code"))
    assert len(codes) == 3 and all(CODE.fullmatch(c) for c in codes.values())

    page.get_by_role("link", name="Use in a campaign").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New campaign")
    page.get_by_label("Subject").fill("A little thank-you, {{ first_name }}")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring 10% off")
    frame = page.frame_locator("iframe.preview-frame")
    expect(frame.locator("body")).to_contain_text(CODE)
    shown = CODE.search(frame.locator("body").inner_text()).group(0)
    assert shown in codes.values()


def test_the_revenue_by_tier_fits_a_phone(site, page, owner, org, shop):
    """On a 390 px phone the revenue table scrolled sideways, hiding its share and
    per-customer columns: each tier is a small card of labelled figures instead."""
    from loyalty.services import program_save

    ladder = [("Bronze", 10), ("Silver", 100), ("Gold", 500)]
    with tenant_context(org):
        program_save(
            organization=org,
            data={
                "metric": "spend",
                "period_days": 365,
                "points_per_unit": 1,
                "tiers": [{"name": n, "threshold": t} for n, t in ladder],
            },
            sync=True,
        )
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, site, owner)
    page.goto(f"{site}/loyalty/")
    table = page.locator("#revenue-table")
    expect(table).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    scroll, client = table.evaluate(
        "t => [t.closest('.table-wrap').scrollWidth, t.closest('.table-wrap').clientWidth]"
    )
    assert scroll <= client, f"the table scrolls: {scroll}px in {client}px"
    gold = table.locator('tr[data-tier="Gold"]')
    for label in ("Customers", "Revenue", "Share of revenue", "Per customer"):
        cell = gold.locator(f'td[data-label="{label}"]')
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
    # the Gold regular's 600 of the 700 the six customers spent
    expect(gold.locator('td[data-label="Share of revenue"]')).to_have_text("86%")

    page.set_viewport_size({"width": 1366, "height": 900})
    expect(table.get_by_role("columnheader", name="Per customer")).to_be_visible()
