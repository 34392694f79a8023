"""The new-organisation forms preselect the browser's time zone and the currency
of its locale (static/js/org-defaults.js), and leave a person's choice alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_up_preselects_the_browsers_zone_and_currency(site, new_context):
    page = new_context(timezone_id="Asia/Tokyo", locale="ja-JP").new_page()
    page.goto(f"{site}/accounts/signup/")
    expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    expect(page.get_by_label("Currency")).to_have_value("JPY")

    page = new_context(timezone_id="Europe/London", locale="en-GB").new_page()
    page.goto(f"{site}/accounts/signup/")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/London")
    expect(page.get_by_label("Currency")).to_have_value("GBP")
