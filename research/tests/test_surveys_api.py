"""The surveys API: create and list with the public link, change (409 once answered),
results, recording answers by the customer's own id, keys and organisations."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer, Event
from research.models import Survey, SurveyResponse

BASE = "/api/v1/surveys/"
QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
    {"type": "text", "text": "Why?"},
]


@pytest.fixture
def created(api):
    response = api.post(BASE, {"name": "After your order", "questions": QUESTIONS}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_and_list_give_the_public_link(api, created):
    assert created["public_url"].startswith("http") and "/r/s/" in created["public_url"]
    assert created["questions"][1] == {"type": "text", "text": "Why?", "required": False}
    assert created["personal_links"] == "edit" and created["status"] == "open"
    listed = api.get(BASE).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [r["id"] for r in rows] == [created["id"]]
    assert rows[0]["public_url"] == created["public_url"]
    assert api.get(f"{BASE}{created['id']}/").json()["name"] == "After your order"


def test_a_bad_question_answers_400_naming_it(api):
    response = api.post(
        BASE,
        {"name": "x", "questions": [{"type": "nps", "text": "ok"}, {"type": "choice", "text": "Pick",
                                                                    "options": ["A"]}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "Question 2" in str(response.json()) and "options" in str(response.json())


def test_change_and_the_409_once_answered(api, created):
    url = f"{BASE}{created['id']}/"
    assert api.patch(url, {"name": "Renamed"}, format="json").json()["name"] == "Renamed"
    assert api.post(f"{url}responses/", {"answers": [9, "Good"]}, format="json").status_code == 201
    changed = [QUESTIONS[0], {"type": "rating", "text": "Why?"}]
    response = api.patch(url, {"questions": changed}, format="json")
    assert response.status_code == 409 and "questions cannot change" in str(response.json())
    assert api.patch(url, {"status": "closed"}, format="json").json()["status"] == "closed"


def test_responses_take_the_customers_own_id(api, org, created):
    with tenant_context(org):
        ada = Customer.objects.create(organization=org, external_id="C-77", email="a@example.com")
    url = f"{BASE}{created['id']}/responses/"
    response = api.post(url, {"customer_id": "C-77", "answers": [10, "Lovely"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["customer_id"] == "C-77" and body["answers"] == [10, "Lovely"]
    assert body["channel"] == "api"
    with tenant_context(org):
        assert SurveyResponse.objects.get().customer_id == ada.pk
        assert Event.objects.filter(customer=ada, type="survey_answered").exists()
    # no customer: anonymous
    assert api.post(url, {"answers": [3, None]}, format="json").status_code == 201
    results = api.get(f"{BASE}{created['id']}/results/").json()
    assert results["responses"] == 2 and results["nps"] == 0.0
    assert {"responses", "response_rate", "nps", "questions", "by_segment"} <= set(results)


def test_unknown_or_erased_customers_and_bad_answers_are_400(api, org, owner, created):
    from customers.services.privacy import customer_erase

    url = f"{BASE}{created['id']}/responses/"
    response = api.post(url, {"customer_id": "NOPE", "answers": [9, None]}, format="json")
    assert response.status_code == 400 and "customer_id" in str(response.json())
    with tenant_context(org):
        gone = Customer.objects.create(organization=org, external_id="C-9", email="g@example.com")
        customer_erase(customer=gone, actor=owner)
    response = api.post(url, {"customer_id": "C-9", "answers": [9, None]}, format="json")
    assert response.status_code == 400 and "erased" in str(response.json())
    response = api.post(url, {"answers": [11, None]}, format="json")
    assert response.status_code == 400 and "Question 1" in str(response.json())
    response = api.post(url, {"answers": [9]}, format="json")
    assert response.status_code == 400


def test_a_read_key_cannot_write(api_read, created):
    assert api_read.get(BASE).status_code == 200
    assert (
        api_read.post(BASE, {"name": "x", "questions": QUESTIONS}, format="json").status_code == 403
    )
    url = f"{BASE}{created['id']}/responses/"
    assert api_read.post(url, {"answers": [9, None]}, format="json").status_code == 403


def test_another_organisations_survey_is_404(api, other_org):
    with tenant_context(other_org):
        theirs = Survey.objects.create(organization=other_org, name="Theirs", questions=QUESTIONS)
    for path in ("", "results/"):
        assert api.get(f"{BASE}{theirs.pk}/{path}").status_code == 404
    assert api.patch(f"{BASE}{theirs.pk}/", {"name": "x"}, format="json").status_code == 404
    response = api.post(f"{BASE}{theirs.pk}/responses/", {"answers": [9, None]}, format="json")
    assert response.status_code == 404
