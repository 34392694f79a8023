"""Campaigns carrying a survey (issue 13): `survey_id` names an open survey of the
organisation, `{{ survey_link }}` is each customer's own signed link to it (in the
preview as it is; in a sent message behind the click redirect, which lands on that
customer's link), the survey's invitations are the customers it was sent to, and the
builder takes `?survey=` from the survey pages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from accounts.tenancy import tenant_context
from campaigns import links, sending, services
from campaigns.models import Campaign, Delivery, DeliveryStatus, TrackedLink
from campaigns.rendering import compile_message, customer_contexts
from campaigns.selectors import survey_invited
from campaigns.tests import sendworld as w
from research.links import read_value

BASE = "/api/v1/campaigns/"
BODY = "Hi {{ first_name }}, new in: https://shop.example/new\n\nTell us: {{ survey_link }}"
QUESTIONS = [{"type": "nps", "text": "Would you recommend us?", "required": True}]


def _survey(org, **fields):
    from research.models import Survey

    fields.setdefault("name", "How did we do?")
    fields.setdefault("questions", QUESTIONS)
    return Survey.objects.create(organization=org, **fields)


def _value(url: str) -> str:
    """The signed value of a personal survey link (`.../r/s/<value>/`)."""
    path = urlsplit(url).path
    prefix = reverse("research_public:answer", kwargs={"token": "X"}).rstrip("/")[:-1]
    assert url.startswith(settings.SITE_URL) and path.startswith(prefix), url
    return path[len(prefix) :].rstrip("/")


@pytest.fixture
def world(org):
    """Five customers who accept email and two who do not, in one segment; an open
    survey and a draft campaign carrying it."""
    with tenant_context(org):
        people = w.customers(org, 5, "sv") + w.customers(org, 2, "nc", email=False)
        seg = w.segments(org, {"All": people})["All"]
        survey = _survey(org)
        campaign = w.campaign(org, [seg.pk], body=BODY, survey=survey)
    return {"people": people, "segment": seg, "survey": survey, "campaign": campaign}


# --- the field -----------------------------------------------------------------------------
def test_the_survey_is_a_foreign_key_that_lets_go_when_the_survey_is_deleted(org, world):
    survey, campaign = world["survey"], world["campaign"]
    with tenant_context(org):
        assert list(survey.campaigns.all()) == [campaign]
        survey.delete()
        campaign.refresh_from_db()
        assert campaign.survey_id is None  # the campaign stays, without a survey
        # and it cannot go out while its words still link to a survey
        problem = services.campaign_survey_problem(campaign)
    assert problem and "{{ survey_link }}" in problem


def test_survey_id_must_name_an_open_survey_of_this_organisation(api, org, other_org, world):
    with tenant_context(org):
        closed = _survey(org, name="Last year's", status="closed")
    with tenant_context(other_org):
        theirs = _survey(other_org, name="Theirs")
    body = {
        "name": "Ask them",
        "channel": "email",
        "segment_ids": [world["segment"].pk],
        "subject": "A minute?",
        "body": "Please answer: {{ survey_link }}",
    }
    for bad in (theirs.pk, 10**9, 10**25, -1, "7", True):
        answer = api.post(BASE, {**body, "survey_id": bad}, format="json")
        assert answer.status_code == 400, (bad, answer.content)
        assert "survey_id" in answer.json()["error"]["fields"]
    refused = api.post(BASE, {**body, "survey_id": closed.pk}, format="json")
    assert refused.status_code == 400
    assert "closed" in refused.json()["error"]["fields"]["survey_id"]
    made = api.post(BASE, {**body, "survey_id": world["survey"].pk}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["survey_id"] == world["survey"].pk
    listed = api.get(f"{BASE}{made.json()['id']}/").json()
    assert listed["survey_id"] == world["survey"].pk
    # the words must hold the link, and the link needs a survey
    no_link = api.post(
        BASE, {**body, "body": "Hello", "survey_id": world["survey"].pk}, format="json"
    )
    assert no_link.status_code == 400
    assert "{{ survey_link }}" in no_link.json()["error"]["fields"]["body"]
    no_survey = api.post(BASE, {**body, "survey_id": None}, format="json")
    assert no_survey.status_code == 400 and "survey_id" in no_survey.json()["error"]["fields"]
    # another organisation's survey cannot be put on an existing campaign either
    changed = api.patch(f"{BASE}{world['campaign'].pk}/", {"survey_id": theirs.pk}, format="json")
    assert changed.status_code == 400 and "survey_id" in changed.json()["error"]["fields"]
    with tenant_context(org):
        assert Campaign.objects.get(pk=world["campaign"].pk).survey_id == world["survey"].pk


def test_a_closed_survey_blocks_the_send(api, org, world):
    from research.models import Survey

    with tenant_context(org):
        Survey.objects.filter(pk=world["survey"].pk).update(status="closed")
    answer = api.post(f"{BASE}{world['campaign'].pk}/send/", {}, format="json")
    assert answer.status_code == 409, answer.content
    error = answer.json()["error"]
    assert error["code"] == "survey_not_sendable" and "closed" in error["message"]
    with tenant_context(org):
        assert not Delivery.objects.filter(campaign=world["campaign"]).exists()


def test_a_version_without_the_link_is_refused(api, org, world):
    answer = api.post(
        f"{BASE}{world['campaign'].pk}/variants/",
        {"name": "B", "body": "Just hello", "share": 0.5},
        format="json",
    )
    assert answer.status_code == 400
    assert "{{ survey_link }}" in answer.json()["error"]["fields"]["body"]


# --- the merge field -----------------------------------------------------------------------
def test_the_merge_field_is_each_customers_own_signed_link(org, world):
    people, survey = world["people"], world["survey"]
    ids = [p.pk for p in people]
    with tenant_context(org):
        contexts = customer_contexts(ids, organization=org, survey=survey)
        without = customer_contexts(ids[:1], organization=org)
    assert without[ids[0]]["survey_link"] is None
    seen = set()
    for person in people:
        url = contexts[person.pk]["survey_link"]
        link = read_value(_value(url))
        assert (link.organization_id, link.survey_id, link.customer_id) == (
            org.pk,
            survey.pk,
            person.pk,
        )
        seen.add(url)
    assert len(seen) == len(people)
    rendered = compile_message(channel="sms", subject="", body=BODY).render(contexts[ids[0]])
    assert contexts[ids[0]]["survey_link"] in rendered.text


def test_a_survey_of_another_organisation_is_never_rendered(org, other_org, world):
    from core.exceptions import ApplicationError

    with tenant_context(other_org):
        theirs = _survey(other_org, name="Theirs")
    with tenant_context(org), pytest.raises(ApplicationError):
        customer_contexts([world["people"][0].pk], organization=org, survey=theirs)


def test_the_preview_shows_the_customers_real_link(api, owner_client, world):
    for person in world["people"][:2]:
        preview = api.get(f"{BASE}{world['campaign'].pk}/preview/?customer={person.pk}").json()
        (url,) = re.findall(r"https?://\S+/r/\S+", preview["text"])
        assert read_value(_value(url)).customer_id == person.pk
        assert url in preview["html"]
    person = world["people"][1]
    page = owner_client.get(
        reverse("campaigns:preview", args=[world["campaign"].pk]), {"customer": person.pk}
    ).content.decode()
    values = {
        read_value(_value(u)).customer_id
        for u in re.findall(r'https?://[^\s"<&]+/r/[^\s"<&]+', page)
    }
    assert values == {person.pk}


def test_a_test_copy_never_carries_a_customers_link(org, owner, world):
    with tenant_context(org):
        services.campaign_test_send(
            organization=org, campaign=world["campaign"], to="owner@acme.test", user=owner
        )
    (message,) = mail.outbox
    assert "/r/" not in message.body
    assert sending.TEST_SURVEY_LINK in message.body


# --- sending -------------------------------------------------------------------------------
def _send(org, campaign):
    with tenant_context(org):
        Campaign.objects.filter(pk=campaign.pk).update(status="sending")
        sending.campaign_send_run(campaign_id=campaign.pk, batch_size=2)


def test_a_send_invites_exactly_the_customers_it_reached(org, world, monkeypatch):
    people, campaign, survey = world["people"], world["campaign"], world["survey"]
    # the hold-out draw hashes the ids, which vary between runs: hold out the first
    # customer for sure, so the test always sees one (and only draws it that way)
    draw = services._unit
    monkeypatch.setattr(
        services,
        "_unit",
        lambda *parts: (
            (0.0 if parts[1] == people[0].pk else 0.99) if parts[-1] == "holdout" else draw(*parts)
        ),
    )
    with tenant_context(org):
        Campaign.objects.filter(pk=campaign.pk).update(holdout_share=0.4)
        other = w.campaign(org, [world["segment"].pk], name="No survey")
    _send(org, campaign)
    by_address = {p.email: p.pk for p in people}
    reached = {by_address[m.to[0]] for m in mail.outbox}
    _send(org, other)  # a campaign without the survey invites nobody to it
    with tenant_context(org):
        rows = {d.customer_id: d.status for d in Delivery.objects.filter(campaign=campaign)}
        invited = survey_invited(survey)
    assert reached and invited == reached
    assert invited == {cid for cid, status in rows.items() if status == DeliveryStatus.SENT}
    assert set(rows.values()) >= {DeliveryStatus.SKIPPED, DeliveryStatus.HOLDOUT}
    assert not invited & {p.pk for p in people[5:]}  # no consent: skipped, not invited


def test_the_sent_link_is_tracked_and_lands_on_the_customers_own_link(client, org, world):
    people, campaign, survey = world["people"], world["campaign"], world["survey"]
    _send(org, campaign)
    with tenant_context(org):
        stored = set(TrackedLink.objects.filter(campaign=campaign).values_list("url", flat=True))
    # one stored link for the survey, whoever got it (and the shop's link)
    assert len(stored) == 2 and "https://shop.example/new" in stored
    assert len(mail.outbox) == 5
    by_address = {p.email: p for p in people}
    for message in mail.outbox:
        person = by_address[message.to[0]]
        clicks = re.findall(re.escape(settings.SITE_URL) + r"/m/\S+", message.body)
        assert "/r/" not in message.body  # the survey link is behind the click redirect
        targets = []
        for url in dict.fromkeys(clicks):
            if "unsubscribe" in url or "preferences" in url:
                continue
            answer = client.get(url[len(settings.SITE_URL) :])
            if answer.status_code == 302:
                targets.append(answer["Location"])
        survey_targets = [t for t in targets if "/r/" in t]
        assert len(survey_targets) == 1, targets
        link = read_value(_value(survey_targets[0]))
        assert (link.organization_id, link.survey_id, link.customer_id) == (
            org.pk,
            survey.pk,
            person.pk,
        )
        assert "https://shop.example/new" in targets
        with tenant_context(org):
            delivery = Delivery.objects.get(campaign=campaign, customer=person)
        assert delivery.clicked_at is not None


def test_a_click_after_the_survey_was_deleted_goes_to_the_stored_link(org, world):
    from research.links import public_url

    _send(org, world["campaign"])
    with tenant_context(org):
        delivery = Delivery.objects.filter(campaign=world["campaign"], status="sent").first()
        link = TrackedLink.objects.get(campaign=world["campaign"], url=public_url(world["survey"]))
        assert "/r/" in links.click_target(link, delivery)
        assert read_value(_value(links.click_target(link, delivery))).customer_id == (
            delivery.customer_id
        )
        world["survey"].delete()
        assert links.click_target(link, delivery) == link.url


# --- the pages -----------------------------------------------------------------------------
def test_the_builder_is_prefilled_from_the_survey_pages(owner_client, org, other_org, world):
    with tenant_context(org):
        closed = _survey(org, name="Old survey", status="closed")
    with tenant_context(other_org):
        theirs = _survey(other_org, name="Their survey")
    page = owner_client.get(reverse("campaigns:new"), {"survey": world["survey"].pk})
    text = page.content.decode()
    assert page.status_code == 200
    assert "Include a survey" in text
    assert f'<option value="{world["survey"].pk}" selected>How did we do?</option>' in text
    assert "{{ survey_link }}" in text  # the message holds the link already
    assert "Old survey" not in text and "Their survey" not in text  # only open, only ours
    for ignored in (closed.pk, theirs.pk):
        other = owner_client.get(reverse("campaigns:new"), {"survey": ignored}).content.decode()
        select = other.split('name="survey"')[1].split("</select>")[0]
        assert re.findall(r'value="(\d*)" selected', select) == [""]  # "No survey"
    form = {
        "name": "Ask them",
        "channel": "email",
        "recipients": "segments",
        "segments": [str(world["segment"].pk)],
        "survey": str(world["survey"].pk),
        "subject": "A minute?",
        "body": "Hello",
        "schedule": "now",
        "holdout_percent": "0",
        "allocation": "fixed",
        "conversion_window_days": "5",
    }
    refused = owner_client.post(reverse("campaigns:new"), form)
    assert refused.status_code == 400
    assert "put {{ survey_link }} in the message" in refused.content.decode()
    saved = owner_client.post(
        reverse("campaigns:new"), {**form, "body": "Hello, tell us: {{ survey_link }}"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    with tenant_context(org):
        assert Campaign.objects.get(name="Ask them").survey_id == world["survey"].pk


def test_the_campaign_page_links_to_the_survey_results(owner_client, world):
    page = owner_client.get(reverse("campaigns:detail", args=[world["campaign"].pk]))
    text = page.content.decode()
    assert page.status_code == 200
    results = reverse("research:survey_detail", args=[world["survey"].pk])
    assert f'<a href="{results}">How did we do?</a>' in text


def test_an_automation_refuses_the_survey_link(api):
    body = {
        "name": "Ask later",
        "trigger": {"kind": "days_after_first_order", "params": {"days": 30}},
        "message": {"channel": "email", "subject": "Hi", "body": "Tell us: {{ survey_link }}"},
        "active": True,
    }
    answer = api.post("/api/v1/automations/", body, format="json")
    assert answer.status_code == 400
    assert "{{ survey_link }}" in answer.json()["error"]["fields"]["message.body"]
