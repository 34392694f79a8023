"""Surveys' services: question and answer checks, recording answers (events,
feedback, personal links answered twice), results (NPS on known answers, per
segment), the CSV, erasure and both exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from core.exceptions import ApplicationError
from customers.models import Customer, Event, Feedback
from research import surveys
from research.models import Survey, SurveyResponse

QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
    {"type": "rating", "text": "How was the delivery?"},
    {"type": "choice", "text": "How did you find us?", "options": ["Friend", "Search", "Ad"]},
    {"type": "text", "text": "What should we improve?"},
]


def _customer(org, n, **kw):
    return Customer.objects.create(
        organization=org, external_id=f"C{n}", email=f"c{n}@example.com", **kw
    )


@pytest.fixture
def survey(in_org, owner):
    return surveys.survey_create(
        organization=in_org, data={"name": "How did we do?", "questions": QUESTIONS}, actor=owner
    )


# --- questions -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("questions", "words"),
    [
        ([], "at least one question"),
        ([{"type": "text", "text": "Q"}] * 21, "at most 20"),
        ([{"type": "stars", "text": "Q"}], "Question 1: type must be one of"),
        ([{"type": "text", "text": "ok"}, {"type": "text", "text": " "}], "Question 2: text"),
        ([{"type": "text", "text": "x" * 301}], "at most 300"),
        ([{"type": "choice", "text": "Pick"}], "Question 1: options are missing"),
        ([{"type": "choice", "text": "Pick", "options": ["One"]}], "2 to 20 options"),
        ([{"type": "choice", "text": "Pick", "options": ["A", "a"]}], "listed twice"),
        ([{"type": "choice", "text": "P", "options": [str(i) for i in range(21)]}], "2 to 20"),
        ([{"type": "nps", "text": "Q", "required": "yes"}], "required must be true or false"),
        ([{"type": "nps", "text": "Q", "options": ["a", "b"]}], "only go with a choice"),
    ],
)
def test_bad_questions_are_refused_naming_the_question_and_field(questions, words):
    with pytest.raises(ApplicationError) as exc:
        surveys.validate_questions(questions)
    assert words in exc.value.message
    assert exc.value.extra["fields"]["questions"]


def test_questions_are_cleaned_and_required_defaults_to_false():
    out = surveys.validate_questions(
        [
            {"type": "choice", "text": " Pick ", "options": [" A ", "B"]},
            {"type": "nps", "text": "N"},
        ]
    )
    assert out == [
        {"type": "choice", "text": "Pick", "options": ["A", "B"], "required": False},
        {"type": "nps", "text": "N", "required": False},
    ]


# --- answers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answers", "where", "words"),
    [
        ([None, None, None, None], "answers.0", "Question 1 (“How likely are you to recommend"),
        ([11, None, None, None], "answers.0", "from 0 to 10"),
        ([9, 0, None, None], "answers.1", "from 1 to 5"),
        ([9, 3.5, None, None], "answers.1", "from 1 to 5"),
        ([9, None, "TV", None], "answers.2", "choose one of: Friend, Search, Ad"),
        ([9, None, None, "x" * 2001], "answers.3", "at most 2,000"),
    ],
)
def test_bad_answers_name_the_question(survey, answers, where, words):
    with pytest.raises(ApplicationError) as exc:
        surveys.validate_answers(survey, answers)
    assert words in exc.value.extra["fields"][where]


def test_answers_need_one_value_per_question(survey):
    with pytest.raises(ApplicationError) as exc:
        surveys.validate_answers(survey, [9])
    assert "4 questions" in exc.value.message


def test_good_answers_are_kept_in_their_form(survey):
    assert surveys.validate_answers(survey, ["9", 4, "Friend", "  Faster please "]) == [
        9,
        4,
        "Friend",
        "Faster please",
    ]


# --- surveys -------------------------------------------------------------------------
def test_questions_keep_their_shape_once_answered(survey, owner):
    surveys.record_response(survey=survey, answers=[9, None, None, None], channel="public")
    changed = [dict(q) for q in survey.questions]
    changed[1]["type"] = "nps"
    with pytest.raises(ApplicationError) as exc:
        surveys.survey_update(survey=survey, data={"questions": changed}, actor=owner)
    assert exc.value.status == 409 and "questions cannot change" in exc.value.message
    reworded = [dict(q) for q in survey.questions]
    reworded[1]["text"] = "How was the parcel?"
    survey = surveys.survey_update(
        survey=survey,
        data={"questions": reworded, "name": "New name", "status": "closed"},
        actor=owner,
    )
    survey.refresh_from_db()
    assert survey.questions[1]["text"] == "How was the parcel?"
    assert (survey.name, survey.status) == ("New name", "closed")


def test_a_closed_survey_takes_no_answers(survey, owner):
    surveys.survey_close(survey=survey, actor=owner)
    with pytest.raises(ApplicationError) as exc:
        surveys.record_response(survey=survey, answers=[9, None, None, None], channel="public")
    assert "closed" in exc.value.message


# --- recording -----------------------------------------------------------------------
def test_a_personal_answer_becomes_an_event_and_feedback(survey, in_org):
    ada = _customer(in_org, 1)
    response = surveys.record_response(
        survey=survey, answers=[10, 4, "Friend", "Lovely cakes"], channel="personal", customer=ada
    )
    event = Event.objects.get(customer=ada, type="survey_answered")
    assert event.properties["survey_id"] == survey.pk
    assert event.properties["survey"] == "How did we do?"
    feedback = Feedback.objects.get(external_id=f"survey-{survey.pk}-{response.pk}")
    assert (feedback.source, feedback.rating, feedback.text) == ("survey", 4.0, "Lovely cakes")
    assert feedback.customer_id == ada.pk and response.feedback_id == feedback.pk


def test_a_second_answer_through_an_edit_link_replaces_the_first(survey, in_org):
    ada = _customer(in_org, 1)
    first = surveys.record_response(
        survey=survey, answers=[3, 2, None, "Slow"], channel="personal", customer=ada
    )
    second = surveys.record_response(
        survey=survey, answers=[9, 5, None, "Much better now"], channel="personal", customer=ada
    )
    assert first.pk == second.pk
    assert SurveyResponse.objects.get().answers == [9, 5, None, "Much better now"]
    assert Event.objects.filter(type="survey_answered").count() == 1
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.text) == (5.0, "Much better now")
    # answers without text or rating: the feedback row goes
    surveys.record_response(survey=survey, answers=[9, None, None, None], channel="personal",
                            customer=ada)  # fmt: skip
    assert not Feedback.objects.exists()


def test_a_once_link_refuses_a_second_answer(survey, in_org, owner):
    surveys.survey_update(survey=survey, data={"personal_links": "once"}, actor=owner)
    ada = _customer(in_org, 1)
    surveys.record_response(survey=survey, answers=[9, None, None, None], channel="personal",
                            customer=ada)  # fmt: skip
    with pytest.raises(ApplicationError) as exc:
        surveys.record_response(survey=survey, answers=[1, None, None, None], channel="personal",
                                customer=ada)  # fmt: skip
    assert "already answered" in exc.value.message
    assert SurveyResponse.objects.get().answers[0] == 9


def test_public_answers_are_anonymous(survey, in_org):
    ada = _customer(in_org, 1)
    response = surveys.record_response(
        survey=survey, answers=[9, 5, None, "Great"], channel="public", customer=ada
    )
    assert response.customer_id is None
    assert not Event.objects.filter(type="survey_answered").exists()
    assert Feedback.objects.get().customer_id is None
    # each public answer is its own
    surveys.record_response(survey=survey, answers=[8, None, None, None], channel="public")
    assert SurveyResponse.objects.count() == 2


def test_an_erased_customer_cannot_answer(survey, in_org):
    ada = _customer(in_org, 1, erased_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ApplicationError, match="erased"):
        surveys.record_response(survey=survey, answers=[9, None, None, None], channel="personal",
                                customer=ada)  # fmt: skip


# --- results -------------------------------------------------------------------------
def test_nps_arithmetic_on_known_answers():
    # 4 promoters (9, 10), 3 passives (7, 8), 3 detractors (0–6): (40% − 30%) = +10
    assert surveys.nps([10, 9, 9, 10, 7, 8, 8, 0, 6, 3]) == 10.0
    assert surveys.nps([6, 6]) == -100.0
    assert surveys.nps([9]) == 100.0
    assert surveys.nps([7, 8]) == 0.0
    assert surveys.nps([]) is None and surveys.nps([None]) is None


def _segments(org, members: dict[str, list]):
    from segmentation.models import Segment, SegmentationRun, SegmentKind
    from segmentation.models import SegmentMembership as Membership

    run = SegmentationRun.objects.create(
        organization=org, as_of=dt.date(2026, 1, 1), chosen_k=2, is_live=True
    )
    out = {}
    for name, customers in members.items():
        seg = Segment.objects.create(organization=org, kind=SegmentKind.CLUSTER, name=name,
                                     key=f"cluster-{name.lower()}")  # fmt: skip
        for c in customers:
            Membership.objects.create(organization=org, run=run, segment=seg, customer=c)
        out[name] = seg
    return out


def test_results_overall_per_question_and_per_segment(survey, in_org, monkeypatch):
    cs = [_customer(in_org, n) for n in range(6)]
    segs = _segments(in_org, {"Loyal": cs[:3], "Fading": cs[3:]})
    scores = [10, 9, 6, 2, 3, 9]
    for c, score in zip(cs, scores, strict=True):
        surveys.record_response(survey=survey, answers=[score, 4 if score > 5 else 2, "Friend",
                                "Nice"], channel="personal", customer=c)  # fmt: skip
    surveys.record_response(survey=survey, answers=[7, None, "Ad", None], channel="public")
    monkeypatch.setattr(surveys, "invited_ids", lambda s: {c.pk for c in cs} | {99991, 99992})

    r = surveys.survey_results(survey)
    assert r["responses"] == 7
    assert r["response_rate"] == 0.75  # 6 personal answers of 8 invited
    # promoters 10, 9, 9 (3/7); detractors 6, 2, 3 (3/7); passive 7
    assert r["nps"] == 0.0
    nps_q, rating_q, choice_q, text_q = r["questions"]
    assert nps_q["distribution"][9] == {"value": 9, "count": 2}
    assert (nps_q["promoters"], nps_q["passives"], nps_q["detractors"]) == (3, 1, 3)
    assert rating_q["mean"] == round((4 + 4 + 4 + 2 + 2 + 4) / 6, 2)
    assert choice_q["distribution"] == [
        {"value": "Friend", "count": 6},
        {"value": "Search", "count": 0},
        {"value": "Ad", "count": 1},
    ]
    assert text_q["count"] == 6 and text_q["texts"] == ["Nice"] * 6
    by = {s["name"]: s for s in r["by_segment"]}
    # Loyal: 10, 9, 6 -> (2 − 1)/3 = +33.3; Fading: 2, 3, 9 -> (1 − 2)/3 = −33.3
    assert by["Loyal"] == {"segment_id": segs["Loyal"].pk, "name": "Loyal", "responses": 3,
                           "nps": 33.3}  # fmt: skip
    assert by["Fading"]["nps"] == -33.3

    only = surveys.survey_results(survey, segment_id=segs["Fading"].pk)
    assert only["responses"] == 3 and only["nps"] == -33.3


def test_response_rate_is_none_when_nobody_was_invited(survey, monkeypatch):
    monkeypatch.setattr(surveys, "invited_ids", lambda s: set())
    assert surveys.survey_results(survey)["response_rate"] is None
    monkeypatch.setattr(surveys, "invited_ids", lambda s: None)
    assert surveys.survey_results(survey)["response_rate"] is None


def test_text_answers_get_themes_from_ten(survey, in_org):
    texts = ["Delivery was late again", "late delivery and cold food", "delivery took ages",
             "Friendly staff at the till", "staff were friendly and kind", "very friendly staff",
             "the delivery driver was late", "kind friendly staff", "late delivery",
             "delivery is always late"]  # fmt: skip
    for t in texts:
        surveys.record_response(survey=survey, answers=[8, None, None, t], channel="public")
    text_q = surveys.survey_results(survey)["questions"][3]
    assert text_q["count"] == 10
    assert text_q["themes"], "ten texts are enough to look for themes"
    labels = " ".join(t["label"] for t in text_q["themes"])
    assert "deliver" in labels or "late" in labels or "staff" in labels


def test_results_csv_has_a_row_per_answer(survey, in_org):
    ada = _customer(in_org, 1)
    surveys.record_response(survey=survey, answers=[9, 5, "Search", "Great, thanks"],
                            channel="personal", customer=ada)  # fmt: skip
    surveys.record_response(survey=survey, answers=[3, None, None, None], channel="public")
    headers, rows = surveys.results_csv(survey)
    rows = list(rows)
    assert headers[:3] == ["answered_at", "channel", "customer_id"]
    assert headers[3] == "Q1 How likely are you to recommend us?"
    assert rows[0][1:] == ["personal", "C1", 9, 5, "Search", "Great, thanks"]
    assert rows[1][1:] == ["public", "", 3, "", "", ""]


# --- personal data -------------------------------------------------------------------
def test_erasure_and_both_exports_cover_survey_answers(survey, in_org, owner):
    from core.models import Job
    from customers.services.privacy import (
        customer_erase,
        customer_export_data,
        organization_export_run,
    )

    ada = _customer(in_org, 1)
    surveys.record_response(survey=survey, answers=[9, 4, "Friend", "Tasty"], channel="personal",
                            customer=ada)  # fmt: skip
    surveys.record_response(survey=survey, answers=[5, None, None, None], channel="public")

    exported = customer_export_data(customer=ada)["survey_answers"]
    assert exported[0]["survey"] == "How did we do?"
    assert exported[0]["answers"][3] == {"question": "What should we improve?", "answer": "Tasty"}

    job = Job.objects.create(organization=in_org, kind="org_export", title="export")
    result = organization_export_run(job_id=job.pk, user_id=owner.pk)
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("survey_responses.csv").decode())))
        assert sorted(r["customer_id"] for r in rows) == ["", "C1"]
        assert "How did we do?" in archive.read("surveys.csv").decode()

    customer_erase(customer=ada, actor=owner)
    assert not SurveyResponse.objects.filter(customer_id=ada.pk).exists()
    assert not Event.objects.filter(customer_id=ada.pk, type="survey_answered").exists()
    assert not Feedback.objects.filter(text="Tasty").exists()
    # the survey and the anonymous answer stay
    assert Survey.objects.filter(pk=survey.pk).exists()
    assert SurveyResponse.objects.count() == 1
