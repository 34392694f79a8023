"""The owner's survey pages: the list, the builder without JavaScript (rows added,
removed, reordered), the results page, the CSV and closing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.models import Customer
from research import surveys
from research.models import Survey

QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
    {"type": "choice", "text": "How did you find us?", "options": ["Friend", "Search"]},
    {"type": "text", "text": "What should we improve?"},
]


def _post(name="Quick check", rows=None, **extra):
    data = {"name": name, "intro": "", "thank_you": "", "personal_links": "edit", "rows": "5"}
    for i, row in enumerate(rows or []):
        for key, value in row.items():
            data[f"q-{i}-{key}"] = value
    data.update(extra)
    return data


@pytest.fixture
def survey(org, owner):
    with tenant_context(org):
        return surveys.survey_create(
            organization=org, data={"name": "How did we do?", "questions": QUESTIONS}, actor=owner
        )


def test_the_list_has_an_empty_state(owner_client):
    html = owner_client.get(reverse("research:surveys")).content.decode()
    assert "No surveys yet" in html and reverse("research:survey_new") in html


def test_the_builder_saves_rows_in_position_order_and_skips_blank_and_removed(owner_client, org):
    rows = [
        {"type": "text", "text": "Anything else?", "position": "3"},
        {"type": "nps", "text": "Would you recommend us?", "position": "1", "required": "on"},
        {"type": "rating", "text": "Dropped", "position": "2", "remove": "on"},
        {"type": "choice", "text": "Which shop?", "position": "2", "options": "High St\r\nMarket\r\n"},
        {"type": "", "text": "", "position": "5"},
    ]  # fmt: skip
    response = owner_client.post(reverse("research:survey_new"), _post(rows=rows))
    assert response.status_code == 302
    with tenant_context(org):
        survey = Survey.objects.get()
    assert response["Location"] == reverse("research:survey_detail", args=[survey.pk])
    assert survey.questions == [
        {"type": "nps", "text": "Would you recommend us?", "required": True},
        {"type": "choice", "text": "Which shop?", "required": False, "options": ["High St",
                                                                                "Market"]},
        {"type": "text", "text": "Anything else?", "required": False},
    ]  # fmt: skip


def test_the_builder_shows_each_problem_beside_its_row(owner_client, org):
    rows = [
        {"type": "nps", "text": "Fine"},
        {"type": "choice", "text": "Pick one", "options": "Only one"},
        {"type": "", "text": "No type"},
    ]
    response = owner_client.post(reverse("research:survey_new"), _post(rows=rows))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="q-1-error"' in html and "Question row 2: options" in html
    assert 'id="q-2-error"' in html and "Question row 3: type must be one of" in html
    assert 'value="Pick one"' in html  # what was typed stays
    with tenant_context(org):
        assert not Survey.objects.exists()
    response = owner_client.post(reverse("research:survey_new"), _post(name="", rows=rows[:1]))
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    response = owner_client.post(reverse("research:survey_new"), _post(rows=[]))
    assert "Add at least one question" in response.content.decode()


def test_a_segment_prefill_says_who_it_is_for(owner_client, org):
    from segmentation.models import Segment, SegmentKind

    with tenant_context(org):
        seg = Segment.objects.create(organization=org, kind=SegmentKind.CLUSTER, name="Fading",
                                     key="cluster-fading")  # fmt: skip
    html = owner_client.get(reverse("research:survey_new") + f"?segment={seg.pk}").content.decode()
    assert "To ask <strong>Fading</strong>" in html
    rows = [{"type": "nps", "text": "Recommend us?"}]
    response = owner_client.post(
        reverse("research:survey_new") + f"?segment={seg.pk}", _post(rows=rows)
    )
    assert response.status_code == 302 and f"segment={seg.pk}" in response["Location"]
    html = owner_client.get(response["Location"]).content.decode()
    assert "survey=" in html and f"segment={seg.pk}" in html and "Send it to Fading" in html


def test_the_edit_page_refuses_a_new_shape_once_answered(owner_client, org, survey):
    with tenant_context(org):
        surveys.record_response(survey=survey, answers=[9, None, None], channel="public")
    url = reverse("research:survey_edit", args=[survey.pk])
    html = owner_client.get(url).content.decode()
    assert "already has answers" in html and 'value="How likely are you to recommend us?"' in html
    rows = [{"type": "rating", "text": "How likely are you to recommend us?"},
            {"type": "choice", "text": "How did you find us?", "options": "Friend\nSearch"},
            {"type": "text", "text": "What should we improve?"}]  # fmt: skip
    response = owner_client.post(url, _post(name="How did we do?", rows=rows))
    assert response.status_code == 400 and "questions cannot change" in response.content.decode()
    rows[0] = {"type": "nps", "text": "Would you recommend us?", "required": "on"}
    assert owner_client.post(url, _post(name="How did we do?", rows=rows)).status_code == 302
    with tenant_context(org):
        survey.refresh_from_db()
    assert survey.questions[0]["text"] == "Would you recommend us?"


def test_the_results_page(owner_client, org, survey):
    url = reverse("research:survey_detail", args=[survey.pk])
    html = owner_client.get(url).content.decode()
    assert "No answers yet" in html and "/r/s/" in html and "Copy link" in html
    with tenant_context(org):
        ada = Customer.objects.create(organization=org, external_id="C1", email="a@example.com")
        surveys.record_response(survey=survey, answers=[10, "Friend", "Great <b>cakes</b>"],
                                channel="personal", customer=ada)  # fmt: skip
        surveys.record_response(survey=survey, answers=[3, "Search", None], channel="public")
    html = owner_client.get(url).content.decode()
    assert "Promoters minus detractors" in html
    assert ">0<" in html  # (50% − 50%)
    assert "Great &lt;b&gt;cakes&lt;/b&gt;" in html  # escaped quote
    assert '<th scope="row">Friend</th>' in html  # the chart reads as a table
    assert "Export CSV" in html and "Close survey" in html
    assert "campaigns/new/?survey=" in html or "Send it in a campaign" in html


def test_csv_and_close(owner_client, org, survey):
    with tenant_context(org):
        surveys.record_response(survey=survey, answers=[9, "Friend", "=SUM(A1)"], channel="public")
    response = owner_client.get(reverse("research:survey_export", args=[survey.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    assert "Q1 How likely are you to recommend us?" in body
    assert "=SUM" not in body.replace("'=SUM", "")  # formulas are defused
    response = owner_client.post(reverse("research:survey_close", args=[survey.pk]))
    assert response.status_code == 302
    with tenant_context(org):
        survey.refresh_from_db()
    assert survey.status == "closed"


def test_viewers_cannot_build_or_close(client, viewer, survey):
    client.force_login(viewer)
    assert client.get(reverse("research:survey_detail", args=[survey.pk])).status_code == 200
    assert client.get(reverse("research:survey_new")).status_code == 403
    assert client.post(reverse("research:survey_close", args=[survey.pk])).status_code == 403
