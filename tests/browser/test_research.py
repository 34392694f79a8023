"""Surveys as an owner and a customer use them: create a survey on the site, answer it
through its public link on a phone-sized screen, and see the answers in its results.
Also: a personal link from a campaign edits its first answer when used again, and the
campaign's preferences page (a public form, like the survey) saves in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from research import links
from research.models import Survey, SurveyResponse

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


def _sign_in(page, site, owner):
    page.set_default_timeout(20_000)
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def _phone(new_context):
    page = new_context(has_touch=True).new_page()
    page.set_viewport_size(PHONE)
    page.set_default_timeout(20_000)
    return page


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"


def test_create_a_survey_answer_it_on_a_phone_and_see_the_results(
    site, page, owner, org, new_context
):
    _sign_in(page, site, owner)
    page.goto(f"{site}/research/surveys/new/")
    page.get_by_label("Name").fill("How did we do?")
    page.locator("#q-0-type").select_option("nps")
    page.locator("#q-0-text").fill("How likely are you to recommend us?")
    page.locator("#q-0-required").check()
    page.locator("#q-1-type").select_option("choice")
    page.locator("#q-1-text").fill("What did you buy?")
    page.locator("#q-1-options").fill("Candles\nSoap\nGifts")
    page.locator("#q-2-type").select_option("text")
    page.locator("#q-2-text").fill("What should we improve?")
    page.get_by_role("button", name="Save survey").click()
    expect(page.get_by_role("heading", name="How did we do?")).to_be_visible()

    public = page.locator("#survey-public-url").input_value()
    assert "/r/s/" in public
    with tenant_context(org):
        survey = Survey.objects.get(name="How did we do?")
    assert [q["type"] for q in survey.questions] == ["nps", "choice", "text"]

    # a customer on a phone, signed out, answers through the public link
    phone = _phone(new_context)
    phone.goto(public)
    expect(phone.get_by_role("heading", name="How did we do?")).to_be_visible()
    _fits(phone)
    # a required question left out is named, and nothing is stored
    phone.get_by_role("button", name="Send my answers").click()
    expect(phone.get_by_role("alert")).to_contain_text("1 answer")
    with tenant_context(org):
        assert not SurveyResponse.objects.exists()
    phone.get_by_label("9", exact=True).check()
    phone.get_by_label("Soap").check()
    phone.get_by_label("Your answer to question 3").fill("Faster delivery please")
    phone.get_by_role("button", name="Send my answers").click()
    expect(phone.get_by_text("Thank you")).to_be_visible()
    _fits(phone)
    with tenant_context(org):
        response = SurveyResponse.objects.get()
    assert response.customer_id is None and response.channel == "public"
    assert response.answers == [9, "Soap", "Faster delivery please"]

    # the owner sees it in the results
    page.reload()
    expect(page.get_by_text("Faster delivery please")).to_be_visible()
    overview = page.locator("section", has=page.get_by_role("heading", name="Overview"))
    expect(overview).to_contain_text("1")
    expect(overview).to_contain_text("100")  # one promoter: NPS +100


def test_a_personal_link_used_twice_edits_the_first_answer(site, page, org, new_context):
    from customers.tests.factories import CustomerFactory

    with tenant_context(org):
        customer = CustomerFactory(organization=org, email="ann@example.com")
        survey = Survey.objects.create(
            organization=org,
            name="Quick question",
            questions=[{"type": "rating", "text": "How was your order?", "required": True}],
        )
    url = links.personal_url(survey, customer.pk).replace("http://testserver", site)
    url = site + url[url.index("/r/s/") :]
    phone = _phone(new_context)
    phone.goto(url)
    phone.locator("input[name$='0'][value='2']").check()
    phone.get_by_role("button", name="Send my answers").click()
    expect(phone.get_by_text("Thank you")).to_be_visible()
    phone.goto(url)
    expect(phone.get_by_role("status")).to_contain_text("You answered this survey")
    phone.locator("input[name$='0'][value='5']").check()
    phone.get_by_role("button", name="Save my changes").click()
    expect(phone.get_by_text("Thank you")).to_be_visible()
    with tenant_context(org):
        response = SurveyResponse.objects.get()
        assert response.customer_id == customer.pk and response.answers == [5]
        assert customer.feedback.get().rating == 5  # the feedback row follows the edit


def test_a_message_preferences_page_saves_in_a_real_browser(site, page, org, new_context):
    """The public pages' referrer policy must let the browser send a same-site Origin
    on POST: with "no-referrer" it sends "Origin: null" and the CSRF check refuses."""
    from campaigns import links as message_links
    from campaigns.models import Delivery
    from campaigns.tests import sendworld

    with tenant_context(org):
        (person,) = sendworld.customers(org, 1, "pref")
        segs = sendworld.segments(org, {"All": [person]})
        campaign = sendworld.campaign(org, [segs["All"].pk])
        delivery = Delivery.objects.create(
            organization=org,
            campaign=campaign,
            customer=person,
            channel="email",
            status="sent",
            token="preftoken123",
        )
    value = message_links.make_token(
        message_links.PREFERENCES, organization_id=org.pk, delivery_token=delivery.token
    )
    phone = _phone(new_context)
    phone.goto(f"{site}/m/p/{value}/")
    box = phone.get_by_role("checkbox").first
    expect(box).to_be_checked()
    box.uncheck()
    phone.get_by_role("button").first.click()
    expect(phone.locator("body")).not_to_contain_text("Forbidden")
    person.refresh_from_db()
    assert person.accepts_email is False
