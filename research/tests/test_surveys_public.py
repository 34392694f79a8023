"""The public survey page: signed links only, answers recorded, personal links
answered twice, closed surveys and erased customers, the rate limit."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.models import Customer, Event, Feedback
from research import links, public_views, surveys
from research.models import SurveyResponse

QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
    {"type": "rating", "text": "How was the delivery?"},
    {"type": "choice", "text": "How did you find us?", "options": ["Friend", "Search"]},
    {"type": "text", "text": "What should we improve?"},
]


@pytest.fixture(autouse=True)
def _fresh_rate_limit(monkeypatch):
    cache = LocMemCache(f"survey-rl-{uuid.uuid4()}", {})
    monkeypatch.setattr(public_views, "_cache", lambda: cache)


@pytest.fixture
def world(org, owner):
    with tenant_context(org):
        survey = surveys.survey_create(
            organization=org, data={"name": "How did we do?", "questions": QUESTIONS}, actor=owner
        )
        ada = Customer.objects.create(organization=org, external_id="C1", email="ada@example.com")
    return {"org": org, "survey": survey, "ada": ada}


def _url(value: str) -> str:
    return reverse("research_public:answer", kwargs={"token": value})


def _personal(world) -> str:
    return _url(links.personal_value(world["survey"], world["ada"].pk))


def _public(world) -> str:
    return _url(links.public_value(world["survey"]))


ANSWERS = {"q0": "9", "q1": "4", "q2": "Friend", "q3": "Faster delivery"}


def test_the_public_page_shows_the_questions_for_a_phone(client, world):
    response = client.get(_public(world))
    assert response.status_code == 200
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    html = response.content.decode()
    assert 'name="viewport"' in html and "How did we do?" in html
    assert html.count("<fieldset") == 4 and html.count("<legend>") == 4
    assert html.count('type="radio" id="q0-') == 11  # NPS 0–10
    assert html.count('type="radio" id="q1-') == 5  # rating 1–5
    assert '<textarea id="q3"' in html and 'for="q3"' in html
    assert "csrfmiddlewaretoken" in html
    assert "base.html" not in [t.name for t in response.templates]  # not the logged-in base


def test_public_answers_are_anonymous(client, world):
    response = client.post(_public(world), ANSWERS)
    assert response.status_code == 303
    thanks = client.get(response["Location"])
    assert thanks.status_code == 200 and "Thank you" in thanks.content.decode()
    with tenant_context(world["org"]):
        r = SurveyResponse.objects.get()
        assert (r.channel, r.customer_id, r.answers) == ("public", None, [9, 4, "Friend",
                                                                         "Faster delivery"])  # fmt: skip
        assert not Event.objects.filter(type="survey_answered").exists()
        assert Feedback.objects.get().customer_id is None


def test_a_personal_answer_is_tied_to_the_customer(client, world):
    assert client.post(_personal(world), ANSWERS).status_code == 303
    with tenant_context(world["org"]):
        r = SurveyResponse.objects.get()
        assert (r.channel, r.customer_id) == ("personal", world["ada"].pk)
        assert Event.objects.get(type="survey_answered").customer_id == world["ada"].pk
        assert Feedback.objects.get().customer_id == world["ada"].pk


def test_answered_twice_through_an_edit_link_edits(client, world):
    client.post(_personal(world), ANSWERS)
    page = client.get(_personal(world)).content.decode()
    assert "You answered this survey on" in page
    assert 'value="9" checked' in page and "Faster delivery</textarea>" in page
    client.post(_personal(world), {**ANSWERS, "q0": "10", "q3": "All good now"})
    with tenant_context(world["org"]):
        assert SurveyResponse.objects.get().answers == [10, 4, "Friend", "All good now"]
        assert Feedback.objects.get().text == "All good now"
        assert Event.objects.filter(type="survey_answered").count() == 1


def test_answered_twice_through_a_once_link_is_refused(client, world, owner):
    with tenant_context(world["org"]):
        surveys.survey_update(survey=world["survey"], data={"personal_links": "once"}, actor=owner)
    client.post(_personal(world), ANSWERS)
    page = client.get(_personal(world))
    assert page.status_code == 200 and "already answered" in page.content.decode()
    again = client.post(_personal(world), {**ANSWERS, "q0": "0"})
    assert "already answered" in again.content.decode()
    with tenant_context(world["org"]):
        assert SurveyResponse.objects.get().answers[0] == 9


def test_bad_answers_come_back_beside_their_question(client, world):
    response = client.post(_public(world), {"q0": "", "q1": "7", "q3": "kept text"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="q0-error"' in html and "needs an answer" in html
    assert 'id="q1-error"' in html and "from 1 to 5" in html
    assert "kept text</textarea>" in html  # what was typed is kept
    with tenant_context(world["org"]):
        assert not SurveyResponse.objects.exists()


def test_forged_altered_and_cut_links_are_refused(client, world, other_org):
    survey, ada = world["survey"], world["ada"]
    genuine = links.personal_value(survey, ada.pk)
    payload, _, signature = genuine.rpartition(":")
    forged = [
        f"{survey.organization_id}.{survey.pk}.c{ada.pk}",  # unsigned
        f"{payload}:{'A' * len(signature)}",  # made-up signature
        genuine.replace(f".c{ada.pk}:", f".c{ada.pk + 1}:"),  # another customer, same signature
        genuine[:-4],  # cut short
        "x",
    ]
    for value in forged:
        response = client.get(_url(value))
        assert response.status_code == 400, value
        assert "This survey link does not work" in response.content.decode()
        assert client.post(_url(value), ANSWERS).status_code == 400
    with tenant_context(world["org"]):
        assert not SurveyResponse.objects.exists()


def test_links_of_another_organisation_or_survey_answer_nothing(client, world, other_org, owner):
    survey = world["survey"]

    class Elsewhere:  # a genuine signature naming another organisation
        organization_id = other_org.pk
        pk = survey.pk
        public_key = survey.public_key

    assert client.get(_url(links.public_value(Elsewhere))).status_code == 404
    assert client.get(_url(links.personal_value(Elsewhere, world["ada"].pk))).status_code == 404
    with tenant_context(world["org"]):
        other = surveys.survey_create(
            organization=world["org"], data={"name": "Other", "questions": QUESTIONS}, actor=owner
        )
    # survey B's public value with survey A's key is not A's link
    mixed = type("Mixed", (), {"organization_id": other.organization_id, "pk": other.pk,
                               "public_key": survey.public_key})  # fmt: skip
    assert client.get(_url(links.public_value(mixed))).status_code == 404
    # a retired public key
    old = _public(world)
    with tenant_context(world["org"]):
        survey.public_key = "new-key"
        survey.save()
    assert client.get(old).status_code == 404


def test_a_closed_survey_and_an_erased_customer_get_a_friendly_page(client, world, owner):
    with tenant_context(world["org"]):
        Customer.objects.filter(pk=world["ada"].pk).update(
            erased_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        )
    response = client.get(_personal(world))
    assert response.status_code == 404 and "no longer works" in response.content.decode()
    with tenant_context(world["org"]):
        surveys.survey_close(survey=world["survey"], actor=owner)
    response = client.get(_public(world))
    assert response.status_code == 410 and "closed" in response.content.decode()
    assert client.post(_public(world), ANSWERS).status_code == 410


def test_answers_are_rate_limited_per_link(client, world, settings):
    settings.SURVEY_RATE_LIMITS = {"answer_public_link": (2, 60), "view_public_link": (3, 60)}
    url = _public(world)
    assert client.post(url, ANSWERS).status_code == 303
    assert client.post(url, ANSWERS).status_code == 303
    refused = client.post(url, ANSWERS)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Please wait a moment" in refused.content.decode()
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert client.get(url).status_code == 429
    # another link has its own budget
    assert client.get(_personal(world)).status_code == 200


def test_answers_are_rate_limited_per_address(client, world, settings):
    settings.SURVEY_RATE_LIMITS = {"answer_ip": (1, 60)}
    assert client.post(_public(world), ANSWERS).status_code == 303
    assert client.post(_personal(world), ANSWERS).status_code == 429
    other_client = client.__class__(REMOTE_ADDR="10.0.0.9")
    assert other_client.post(_personal(world), ANSWERS).status_code == 303


def test_answers_need_the_csrf_token(world):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(_public(world), ANSWERS).status_code == 403
