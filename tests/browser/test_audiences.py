"""Audiences → build one from a segment minus a rule segment → the preview shows its
size and reach → save → its page lists the members → the CSV download holds them."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from audiences.models import Audience

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(org, owner):
    """24 customers in a cluster segment "Regulars" (plus 6 outside it); every third
    has 3+ orders (the rule segment "Frequent buyers"); even ones accept email,
    every fourth SMS. Regulars minus frequent buyers: the 16 not divisible by 3."""
    from customers.models import Customer
    from segmentation.models import SegmentKind, SegmentMembership
    from segmentation.services.rules import rule_segment_create
    from segmentation.tests.factories import SegmentationRunFactory, SegmentFactory

    with tenant_context(org):
        run = SegmentationRunFactory(organization=org, is_live=True)
        regulars = SegmentFactory(
            organization=org, kind=SegmentKind.CLUSTER, name="Regulars", size=24,
            first_run=run, last_run=run,
        )  # fmt: skip
        for i in range(30):
            customer = Customer.objects.create(
                organization=org,
                external_id=f"R{i:03d}",
                first_name=f"Robin{i}",
                email=f"r{i}@example.com",
                phone=f"+4471000{i:05d}",
                accepts_email=i % 2 == 0,
                accepts_sms=i % 4 == 0,
                orders_count=3 if i % 3 == 0 else 1,
            )
            if i < 24:
                SegmentMembership.objects.create(
                    organization=org, run=run, segment=regulars, customer=customer
                )
        frequent = rule_segment_create(
            organization=org,
            name="Frequent buyers",
            rule={"op": "and", "conditions": [
                {"field": "orders_count", "operator": "gte", "value": 3}
            ]},
        )  # fmt: skip
    expected = [f"R{i:03d}" for i in range(24) if i % 3]
    return {"regulars": regulars, "frequent": frequent, "expected": expected}


def test_build_an_audience_and_download_it(site, page, owner, org, shop):
    page.set_default_timeout(15_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audiences").click()
    expect(page.get_by_role("heading", name="No audiences yet")).to_be_visible()
    page.get_by_role("link", name="Build your first audience").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New audience")

    page.get_by_label("Name", exact=True).fill("Regulars, not yet frequent")
    kinds = page.get_by_role("group", name="What kind of audience?")
    expect(kinds.get_by_role("radio", name="Combine segments")).to_be_checked()
    page.get_by_role("group", name="Customers in these segments").get_by_label("Regulars").check()
    page.get_by_role("group", name="But leave out customers in").get_by_label(
        "Frequent buyers"
    ).check()

    # The preview (an aria-live region) counts the audience and its reach:
    # 16 customers; email: even of them (8); SMS: every fourth (4, 8, 16, 20) = 4.
    preview = page.locator("#audience-preview")
    expect(preview.locator(".stat").filter(has_text="Customers")).to_contain_text("16")
    expect(preview.locator(".stat").filter(has_text="Reachable by email")).to_contain_text("8")
    expect(preview.locator(".stat").filter(has_text="Reachable by SMS")).to_contain_text("4")

    page.get_by_role("button", name="Save audience").last.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Regulars, not yet frequent")
    expect(
        page.get_by_text("Customers in “Regulars”, except those in “Frequent buyers”.")
    ).to_be_visible()
    # (Celery is eager in tests: the build has finished when the page arrives.)
    expect(page.get_by_text("Ready · refreshed")).to_be_visible()
    members = page.get_by_role("table", name="Customers in Regulars, not yet frequent")
    expect(members.locator("tbody tr")).to_have_count(16)
    expect(members.get_by_role("link", name="R001")).to_be_visible()
    expect(members.get_by_role("link", name="R003")).to_have_count(0)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert sorted(r["customer_id"] for r in rows) == shop["expected"]
    assert {r["audience"] for r in rows} == {"Regulars, not yet frequent"}
    assert sum(r["accepts_email"] == "True" for r in rows) == 8

    with tenant_context(org):
        audience = Audience.objects.get()
    assert (audience.status, audience.size) == ("ready", 16)

    # Back on the list: the audience with its figures.
    page.get_by_role("link", name="← Audiences").click()
    row = page.get_by_role("row").filter(has_text="Regulars, not yet frequent")
    expect(row).to_contain_text("Segments combined")
    expect(row).to_contain_text("Ready")
