"""Hostile inputs against surveys, their public page, the feedback API, exports and
pages (issue 13 review): each case answers a clear 4xx or renders escaped, never a
500, and writes nothing half-way."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.urls import reverse

from accounts.tenancy import tenant_context
from customers.models import Customer, Feedback
from research import links, public_views, surveys
from research.models import SurveyResponse

BASE = "/api/v1/surveys/"
QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
    {"type": "rating", "text": "How was the delivery?"},
    {"type": "choice", "text": "How did you find us?", "options": ["Friend", "Search"]},
    {"type": "text", "text": "What should we improve?"},
]


@pytest.fixture(autouse=True)
def _fresh_rate_limit(monkeypatch):
    cache = LocMemCache(f"survey-rl-h-{uuid.uuid4()}", {})
    monkeypatch.setattr(public_views, "_cache", lambda: cache)


@pytest.fixture
def survey(org, owner):
    with tenant_context(org):
        return surveys.survey_create(
            organization=org, data={"name": "How did we do?", "questions": QUESTIONS}, actor=owner
        )


def _responses(org) -> int:
    with tenant_context(org):
        return SurveyResponse.objects.count()


@pytest.mark.parametrize(
    "answers",
    [
        "9",
        {"0": 9},
        [9, 4, "Friend"],
        [9, 4, "Friend", "x", "extra"],
        [[9], 4, "Friend", "x"],
        [{"a": 1}, 4, "Friend", "x"],
        [True, 4, "Friend", "x"],
        [9, False, "Friend", "x"],
        [9.5, 4, "Friend", "x"],
        ["--9", 4, "Friend", "x"],
        ["²", 4, "Friend", "x"],
        ["٩", 4, "Friend", "x"],
        ["9" * 5000, 4, "Friend", "x"],
        [1e308, 4, "Friend", "x"],
        [9, 4, ["Friend"], "x"],
        [9, 4, {"Friend": 1}, "x"],
        [9, 4, "Friend", {"t": "x"}],
        [9, 4, "Friend", ["x"]],
        [9, 4, "Friend", "x" * 100_000],
        [9, 4, "Friend", 12],
        [None, 4, "Friend", "x"],
    ],
)
def test_bad_answers_through_the_api_are_400(api, org, survey, answers):
    response = api.post(f"{BASE}{survey.pk}/responses/", {"answers": answers}, format="json")
    assert response.status_code == 400, response.content
    assert _responses(org) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_400(api, org, survey, literal):
    body = '{"answers": [' + literal + ', 4, "Friend", "x"]}'
    response = api.post(f"{BASE}{survey.pk}/responses/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert _responses(org) == 0


@pytest.mark.parametrize(
    "text",
    ["nul \x00 inside", "lone \ud800 surrogate"],
)
def test_unstorable_text_answers_are_400(api, org, survey, text):
    response = api.post(
        f"{BASE}{survey.pk}/responses/",
        json.dumps({"answers": [9, 4, "Friend", text]}),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "Question 4" in response.json()["error"]["fields"]["answers.3"]
    assert _responses(org) == 0


@pytest.mark.parametrize(
    "questions",
    [
        "x",
        {"type": "nps"},
        [["nps"]],
        [{"type": "nps", "text": {"x": 1}}],
        [{"type": ["nps"], "text": "a"}],
        [{"type": {"a": 1}, "text": "a"}],
        [{"type": "choice", "text": "a", "options": [["A"], "B"]}],
        [{"type": "choice", "text": "a", "options": "A,B"}],
        [{"type": "nps", "text": "a", "required": "yes"}],
        [{"type": "nps", "text": "a" * 100_000}],
        [{"type": "nps", "text": "nul \x00"}],
        [{"type": "nps", "text": "ok", 1: 2}],
    ],
)
def test_bad_questions_through_the_api_are_400(api, org, survey, questions):
    response = api.patch(
        f"{BASE}{survey.pk}/", json.dumps({"questions": questions}), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    with tenant_context(org):
        survey.refresh_from_db()
        assert len(survey.questions) == 4


@pytest.mark.parametrize("field", ["name", "intro", "thank_you", "personal_links", "status"])
@pytest.mark.parametrize("value", [{"a": 1}, ["a"], 12, True, "nul \x00"])
def test_bad_survey_fields_are_400(api, survey, field, value):
    response = api.patch(
        f"{BASE}{survey.pk}/", json.dumps({field: value}), content_type="application/json"
    )
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("customer_id", ["C\x001", "C\ud8001"])
def test_a_customer_id_that_cannot_be_stored_is_400(api, org, survey, customer_id):
    response = api.post(
        f"{BASE}{survey.pk}/responses/",
        json.dumps({"customer_id": customer_id, "answers": [9, None, None, None]}),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "customer_id" in response.json()["error"]["fields"]


# --- the public page ------------------------------------------------------------------
ANSWERS = {"q0": "9", "q1": "4", "q2": "Friend", "q3": "Faster delivery"}


def _page(value: str) -> str:
    return reverse("research_public:answer", kwargs={"token": value})


@pytest.fixture
def ada(org):
    with tenant_context(org):
        return Customer.objects.create(organization=org, external_id="C1", email="a@example.com")


@pytest.mark.parametrize(
    "posted",
    [
        {"q0": "--9"},
        {"q0": "²"},
        {"q0": "9" * 5000},
        {"q3": "nul \x00 in the text"},
        {"q2": "Friend\x00"},
    ],
)
def test_hostile_answers_on_the_public_page_come_back_beside_their_question(
    client, org, survey, posted
):
    response = client.post(_page(links.public_value(survey)), {**ANSWERS, **posted})
    assert response.status_code == 400
    html = response.content.decode()
    name = next(iter(posted))
    assert f'id="{name}-error"' in html
    assert _responses(org) == 0


def test_two_answers_at_the_same_moment_through_a_once_link_are_a_friendly_409(
    client, org, owner, survey, ada, monkeypatch
):
    """The second of two simultaneous POSTs does not see the first's row (both read
    before either wrote): the unique constraint holds and the page says so."""
    with tenant_context(org):
        surveys.survey_update(survey=survey, data={"personal_links": "once"}, actor=owner)
    url = _page(links.personal_value(survey, ada.pk))
    page = client.get(url)  # both people opened the form before either answered
    assert page.status_code == 200
    assert client.post(url, ANSWERS).status_code == 303
    # the second request read "no answer yet" before the first wrote
    monkeypatch.setattr(public_views, "previous_response", lambda **kw: None)
    real = SurveyResponse.objects.select_for_update
    monkeypatch.setattr(
        SurveyResponse.objects, "select_for_update", lambda: real().filter(pk__in=[])
    )
    second = client.post(url, {**ANSWERS, "q0": "0"})
    assert second.status_code == 409
    assert "just used to answer" in second.content.decode()
    with tenant_context(org):
        assert [r.answers[0] for r in SurveyResponse.objects.all()] == [9]
        assert Feedback.objects.count() == 1


def test_an_edit_link_shows_only_its_own_customers_answers(client, org, survey, ada):
    with tenant_context(org):
        bob = Customer.objects.create(organization=org, external_id="C2", email="b@example.com")
        surveys.record_response(
            survey=survey, answers=[9, 4, "Friend", "Ada's secret"], channel="personal",
            customer=ada,
        )  # fmt: skip
    html = client.get(_page(links.personal_value(survey, bob.pk))).content.decode()
    assert "Ada&#x27;s secret" not in html and "Ada's secret" not in html
    html = client.get(_page(links.public_value(survey))).content.decode()
    assert "secret" not in html


def test_public_links_share_a_larger_budget_than_personal_ones(client, org, survey, ada):
    """The public link is everyone's: a handful of answers a minute from a shop's
    newsletter readers must not be refused (each address keeps its own limit)."""
    public = _page(links.public_value(survey))
    for n in range(12):
        other = client.__class__(REMOTE_ADDR=f"10.0.1.{n}")
        assert other.post(public, ANSWERS).status_code == 303, n
    personal = _page(links.personal_value(survey, ada.pk))
    codes = [
        client.__class__(REMOTE_ADDR=f"10.0.2.{n}").post(personal, ANSWERS).status_code
        for n in range(8)
    ]
    assert codes[:6] == [303] * 6 and codes[6:] == [429, 429]


def test_hostile_text_is_escaped_on_the_thank_you_page(client, org, owner, survey):
    with tenant_context(org):
        surveys.survey_update(
            survey=survey,
            data={"thank_you": "<script>alert(1)</script>", "name": "<img src=x onerror=1>"},
            actor=owner,
        )
    html = client.get(_page(links.public_value(survey)) + "?done=1").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


XSS = '<script>alert("x")</script><svg onload=alert(1)>'


def test_customer_words_are_escaped_in_pages_and_panels(owner_client, org, survey, ada):
    from research.models import FeedbackInsight, ResearchRun, Theme

    with tenant_context(org):
        for n in range(12):  # enough text answers for themes on the results page
            surveys.record_response(
                survey=survey, answers=[3, 2, "Search", f"{XSS} late parcel {n}"],
                channel="public",
            )  # fmt: skip
        surveys.record_response(
            survey=survey, answers=[3, 2, "Search", XSS], channel="personal", customer=ada
        )
        run = ResearchRun.objects.create(
            organization=org,
            changes=[{"kind": "theme", "direction": "up", "title": XSS, "sentence": XSS,
                      "url": "/research/", "evidence": [], "weight": 1.0}],
        )  # fmt: skip
        feedback = Feedback.objects.filter(customer=ada).first()
        theme = Theme.objects.create(
            organization=org, run=run, label=XSS, phrases=[XSS], size=1, sentiment=-0.5,
            examples=[{"feedback_id": feedback.pk, "text": XSS}],
            trend={"last_30d": 1, "prev_30d": 0, "change": 1.0},
        )  # fmt: skip
        FeedbackInsight.objects.create(
            organization=org, feedback=feedback, sentiment=-0.5, theme=theme, phrases=[XSS]
        )
        from campaigns.tests import sendworld as w

        segment = w.segments(org, {"All": [ada]})["All"]
        Theme.objects.filter(pk=theme.pk).update(
            by_segment=[{"segment_id": segment.pk, "count": 1, "share": 1.0, "share_others": 0,
                         "index": 3.0, "notable": True, "sentence": XSS}]
        )  # fmt: skip
    pages = [
        reverse("segmentation:segment_detail", args=[segment.pk]),
        reverse("research:overview"),
        reverse("research:theme", args=[theme.pk]),
        reverse("research:feedback"),
        reverse("research:feedback") + f"?customer={ada.pk}",
        reverse("research:survey_detail", args=[survey.pk]),
        reverse("customers:detail", args=[ada.pk]),
        reverse("core:dashboard"),
    ]
    for url in filter(None, pages):
        response = owner_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "<script>alert(" not in html and "<svg onload" not in html, url
        assert "&lt;script&gt;alert(" in html, url  # shown, as text


# --- exports ----------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]


def test_the_survey_csv_neutralises_formulas(owner_client, org, survey, ada):
    with tenant_context(org):
        Customer.objects.filter(pk=ada.pk).update(external_id="=cmd|' /C calc'!A0")
        ada.refresh_from_db()
        for text in FORMULAS:
            surveys.record_response(survey=survey, answers=[9, None, None, text], channel="public")
        surveys.record_response(
            survey=survey, answers=[9, None, None, "fine"], channel="personal", customer=ada
        )
    response = owner_client.get(reverse("research:survey_export", args=[survey.pk]))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    import csv
    import io

    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and c[1:2] != "")
                and not c.lstrip("-").replace(".", "").isdigit()]  # fmt: skip
    for formula in FORMULAS:
        assert "'" + formula in cells


def test_the_organisation_export_neutralises_formulas_and_has_every_table(org, owner, survey, ada):
    import csv
    import io
    import zipfile
    from pathlib import Path

    from core.models import Job
    from customers.services.privacy import customer_export_data, organization_export_run
    from research.models import FeedbackInsight, ResearchRun, Theme
    from research.tests.test_privacy_analysis import RESEARCH_TABLES

    with tenant_context(org):
        Survey = type(survey)
        Survey.objects.filter(pk=survey.pk).update(name="=2+5")
        survey.refresh_from_db()
        surveys.record_response(
            survey=survey, answers=[9, 2, None, "=1+1"], channel="personal", customer=ada
        )
        feedback = Feedback.objects.get(customer=ada)
        run = ResearchRun.objects.create(organization=org)
        theme = Theme.objects.create(
            organization=org, run=run, label="=label", size=1,
            examples=[{"feedback_id": feedback.pk, "text": "=1+1"}],
        )  # fmt: skip
        FeedbackInsight.objects.create(
            organization=org, feedback=feedback, sentiment=0.1, theme=theme, phrases=["=p"]
        )
        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        person = customer_export_data(customer=ada)
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
        names = set(archive.namelist())
        for model, (_, person_key, zip_name) in RESEARCH_TABLES.items():
            if zip_name:
                assert zip_name in names, model
            if person_key:
                assert person.get(person_key), model
        for name in ("surveys.csv", "survey_responses.csv", "themes.csv",
                     "feedback_insights.csv", "feedback.csv"):  # fmt: skip
            rows = list(csv.reader(io.StringIO(archive.read(name).decode())))
            assert len(rows) > 1, name
            bad = [c for row in rows for c in row if c[:1] in ("=", "+", "@")]
            assert not bad, (name, bad)


# --- the campaign's click redirect ------------------------------------------------------
def test_a_personal_survey_link_in_a_campaign_takes_each_customer_to_their_own(
    client, org, other_org, survey
):
    """A marketer copies one customer's link from the preview into the message: a
    click must never land another customer on it (an edit link shows its answers)."""
    from campaigns import links as campaign_links
    from campaigns.links import tracked_link_for
    from campaigns.models import Delivery
    from campaigns.tests import sendworld as w

    with tenant_context(org):
        ada, bob = w.customers(org, 2, "hx")
        surveys.record_response(
            survey=survey, answers=[9, 4, "Friend", "Ada's own words"], channel="personal",
            customer=ada,
        )  # fmt: skip
        seg = w.segments(org, {"All": [ada, bob]})["All"]
        campaign = w.campaign(org, [seg.pk])  # carries no survey
        pasted = tracked_link_for(campaign, links.personal_url(survey, ada.pk))
        delivery = Delivery.objects.create(
            organization=org, campaign=campaign, customer=bob, channel="email", status="sent",
            token="hx-bob-token",
        )  # fmt: skip
        target = campaign_links.click_target(pasted, delivery)
        assert links.read_value(target.rstrip("/").rsplit("/", 1)[1]).customer_id == bob.pk
        # a click whose delivery is gone (the person was erased) gets the public link
        gone = campaign_links.click_target(pasted, None)
        assert links.read_value(gone.rstrip("/").rsplit("/", 1)[1]).customer_id is None
        url = campaign_links.click_url(delivery, pasted)
    response = client.get(url[len(settings.SITE_URL) :])
    assert response.status_code == 302
    page = client.get(response["Location"][len(settings.SITE_URL) :])
    assert "Ada&#x27;s own words" not in page.content.decode()
    assert "Ada's own words" not in page.content.decode()


# --- erasure ------------------------------------------------------------------------------
def test_erasure_takes_a_customers_survey_words_out_of_everything(org, owner, survey, ada):
    from customers.models import Event
    from customers.services.privacy import customer_erase
    from research.models import FeedbackInsight, ResearchRun, Theme

    with tenant_context(org):
        surveys.record_response(
            survey=survey, answers=[2, 1, "Search", "Ada hated the box"], channel="personal",
            customer=ada,
        )  # fmt: skip
        surveys.record_response(survey=survey, answers=[9, 5, "Friend", "Loved it"], channel="api")
        theirs = Feedback.objects.get(customer=ada)
        kept = Feedback.objects.get(customer__isnull=True)
        run = ResearchRun.objects.create(organization=org)
        theme = Theme.objects.create(
            organization=org, run=run, label="Packaging", size=2,
            examples=[{"feedback_id": theirs.pk, "text": "Ada hated the box"},
                      {"feedback_id": kept.pk, "text": "Loved it"}],
        )  # fmt: skip
        for f in (theirs, kept):
            FeedbackInsight.objects.create(organization=org, feedback=f, sentiment=0, theme=theme)
        customer_erase(customer=ada, actor=owner)
        assert not SurveyResponse.objects.filter(customer_id=ada.pk).exists()
        assert not Feedback.objects.filter(pk=theirs.pk).exists()
        assert not Event.objects.filter(customer_id=ada.pk, type="survey_answered").exists()
        assert list(FeedbackInsight.objects.values_list("feedback_id", flat=True)) == [kept.pk]
        theme.refresh_from_db()
        assert theme.examples == [{"feedback_id": kept.pk, "text": "Loved it"}]
        assert "Ada hated" not in json.dumps(surveys.survey_results(survey))


@pytest.mark.parametrize("value", ["99999999999999999999999", "-1", "٣", "1e3", " 1 "])
def test_ids_in_the_address_that_are_no_row_show_the_page(owner_client, survey, value):
    assert owner_client.get(reverse("research:feedback"), {"customer": value}).status_code == 200
    detail = reverse("research:survey_detail", args=[survey.pk])
    assert owner_client.get(detail, {"segment": value}).status_code == 200
    assert owner_client.get(reverse("research:survey_new"), {"segment": value}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_answers_through_a_once_link_store_one(org, monkeypatch):
    """Two real transactions at once (PostgreSQL): both checked their answers and
    looked for an earlier one before either wrote; the unique constraint keeps one and
    the other gets the friendly 'already answered' error, not a database error."""
    import threading

    from django.db import connection

    from core.exceptions import ApplicationError

    if connection.vendor != "postgresql":
        pytest.skip("needs two concurrent transactions (PostgreSQL)")
    with tenant_context(org):
        survey = surveys.survey_create(
            organization=org,
            data={"name": "Once", "questions": QUESTIONS, "personal_links": "once"},
        )
        ada = Customer.objects.create(organization=org, external_id="C1", email="a@example.com")
    barrier = threading.Barrier(2)
    real = surveys.validate_answers

    def checked_together(s, answers):
        out = real(s, answers)
        barrier.wait(timeout=20)
        return out

    monkeypatch.setattr(surveys, "validate_answers", checked_together)
    results: list[str] = []

    def answer(score: int) -> None:
        try:
            with tenant_context(org):
                surveys.record_response(
                    survey=survey, answers=[score, None, None, None], channel="personal",
                    customer=ada,
                )  # fmt: skip
            results.append("stored")
        except ApplicationError as exc:
            results.append(exc.code)
        except Exception as exc:  # noqa: BLE001  (the test reports it)
            results.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=answer, args=(n,)) for n in (9, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["already_answered", "stored"], results
    with tenant_context(org):
        assert SurveyResponse.objects.count() == 1
        assert Feedback.objects.count() == 0  # no text, no rating: no feedback row
        from customers.models import Event

        assert Event.objects.filter(type="survey_answered").count() == 1


@pytest.mark.parametrize(
    "record",
    [
        {"created_at": "2026-01-01", "text": "a\ud800b"},
        {"created_at": "2026-01-01", "text": "x", "properties": {"k": ["\udfff"]}},
    ],
)
def test_feedback_bulk_with_a_lone_surrogate_is_400_naming_the_record(api, org, record):
    response = api.post(
        "/api/v1/feedback/bulk/", json.dumps([record]), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "Record 0" in response.json()["error"]["message"]
    with tenant_context(org):
        assert not Feedback.objects.exists()
