"""The `research` step on generated feedback with planted themes per segment."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tenancy import tenant_context
from customers.models import Customer, Feedback
from research.analysis import research_run
from research.models import FeedbackInsight, ResearchRun, Theme
from research.tests import generated
from segmentation.models import Persona, Segment, SegmentationRun, SegmentMembership

AS_OF = dt.date(2026, 6, 30)
NOON = dt.time(12, 0, tzinfo=dt.UTC)


def _when(rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(AS_OF - dt.timedelta(days=rng.randint(0, 59)), NOON)


def plant(org, *, per_person: int = 3) -> dict:
    """Two live segments of 40 customers: "Fading" (persona "Fading Small-Basket
    Shoppers") writes mostly about delivery, "Regulars" about staff, sizing and price;
    20 customers outside any segment write a mix. Returns the segments and people."""
    rng = random.Random(7)
    with tenant_context(org):
        run = SegmentationRun.objects.create(
            organization=org, as_of=AS_OF, chosen_k=2, is_live=True
        )
        segments = {}
        people: dict[str, list[Customer]] = {}
        mixes = {
            "Fading": {"delivery": 0.7, "staff": 0.1, "sizing": 0.1, "price": 0.1},
            "Regulars": {"delivery": 0.1, "staff": 0.35, "sizing": 0.3, "price": 0.25},
            None: {"delivery": 0.25, "staff": 0.25, "sizing": 0.25, "price": 0.25},
        }
        n = 0
        for name, mix in mixes.items():
            group = []
            for k in range(40 if name else 20):
                group.append(
                    Customer.objects.create(
                        organization=org, external_id=f"{name or 'none'}-{k}", email=f"c{n}@x.io"
                    )
                )
                n += 1
            people[name or "none"] = group
            counts = {t: round(share * len(group) * per_person) for t, share in mix.items()}
            texts, _topics = generated.feedback(counts, seed=len(segments) + 1)
            for i, text in enumerate(texts):
                Feedback.objects.create(
                    organization=org,
                    external_id=f"{name}-{i}",
                    customer=group[i % len(group)],
                    created_at=_when(rng),
                    source=rng.choice(["review", "support"]),
                    text=text,
                )
            if name:
                segment = Segment.objects.create(
                    organization=org, kind="cluster", name=name, key=f"cluster-{name}", size=40
                )
                SegmentMembership.objects.bulk_create(
                    SegmentMembership(organization=org, run=run, segment=segment, customer=c)
                    for c in group
                )
                segments[name] = segment
        Persona.objects.create(
            organization=org, segment=segments["Fading"], name="Fading Small-Basket Shoppers"
        )
    return {"segments": segments, "people": people}


def _run(org, **kwargs) -> dict:
    with tenant_context(org):
        return research_run(organization=org, as_of=kwargs.pop("as_of", AS_OF), **kwargs)


@pytest.mark.django_db
def test_planted_themes_are_found_labelled_and_indexed(org):
    world = plant(org)
    result = _run(org)
    assert result["feedback"] == Feedback.all_objects.filter(organization=org).count()
    assert result["model"] == "lexicon"
    with tenant_context(org):
        themes = list(Theme.objects.all())
        # every planted topic has a theme labelled with one of its words (a large
        # topic may be split into several, e.g. "Delivery box" and "Delivery tracking")
        for topic, spec in generated.TOPICS.items():
            words = set(spec["words"])
            assert any(set(t.label.lower().split()) & words for t in themes), (topic, themes)
        on_delivery = [t for t in themes if "delivery" in t.label.lower()]
        delivery = max(on_delivery, key=lambda t: t.size)
        assert len(delivery.examples) == 3
        for example in delivery.examples:
            quoted = Feedback.objects.get(pk=example["feedback_id"])
            assert example["text"].rstrip("…") in " ".join(quoted.text.split())
        assert set(delivery.trend) >= {"last_30d", "prev_30d", "change", "trend"}
        fading = world["segments"]["Fading"].pk
        regulars = world["segments"]["Regulars"].pk
        for theme in on_delivery:
            entry = next(e for e in theme.by_segment if e["segment_id"] == fading)
            assert entry["index"] > 1.5
            regular = next(e for e in theme.by_segment if e["segment_id"] == regulars)
            assert regular["index"] < 1
        entry = next(e for e in delivery.by_segment if e["segment_id"] == fading)
        assert entry["notable"]
        assert entry["sentence"].startswith(
            f"Fading Small-Basket Shoppers mention {delivery.label.lower()}"
        )
        assert "more often than others" in entry["sentence"]
        # the segment without a persona is named by its own name
        staff = next(t for t in themes if "staff" in t.label.lower())
        entry = next(e for e in staff.by_segment if e["segment_id"] == regulars)
        assert entry["sentence"].startswith("Regulars mention staff")
        # one insight per feedback item, each naming its theme
        assert FeedbackInsight.objects.count() == result["feedback"]
        members = FeedbackInsight.objects.filter(theme=delivery).select_related("feedback")
        assert members.count() == delivery.size
        words = generated.TOPICS["delivery"]["words"]
        assert sum(any(w in i.feedback.text.lower() for w in words) for i in members) >= (
            0.9 * len(members)
        )
        assert all(i.phrases for i in members)
        run = ResearchRun.objects.get()
        assert run.summary["feedback"] == result["feedback"]
        assert set(run.summary["by_source"]) == {"review", "support"}
        assert (
            run.summary["last_30d"]["count"] + run.summary["prev_30d"]["count"]
            == (result["feedback"])
        )
        assert "word list" in run.model_sentence


LABELLED = [
    ("The staff were lovely and helped me find the perfect coat.", 1),
    ("Delivery was quick and the parcel arrived in perfect condition.", 1),
    ("Great value for money, I love this jacket.", 1),
    ("Brilliant service, will definitely shop here again!", 1),
    ("The courier lost my parcel and nobody replied to my emails.", -1),
    ("Terrible fit, the dress fell apart after one wash.", -1),
    ("Rude cashier and a filthy shop. Never again.", -1),
    ("Don't waste your money, the zip broke on day one.", -1),
]


@pytest.mark.django_db
def test_sentiment_agrees_with_labelled_examples(org):
    with tenant_context(org):
        for i, (text, _) in enumerate(LABELLED):
            Feedback.objects.create(
                organization=org,
                external_id=f"l{i}",
                created_at=dt.datetime.combine(AS_OF, NOON),
                text=text,
            )
        Feedback.objects.create(
            organization=org,
            external_id="stars-only",
            created_at=dt.datetime.combine(AS_OF, NOON),
            rating=5,
        )
    _run(org)
    with tenant_context(org):
        found = dict(FeedbackInsight.objects.values_list("feedback__external_id", "sentiment"))
    for i, (_, sign) in enumerate(LABELLED):
        assert found[f"l{i}"] * sign > 0.05, LABELLED[i][0]
    assert found["stars-only"] is None  # a rating without text: no sentiment read


@pytest.mark.django_db
def test_the_rated_model_is_chosen_with_enough_ratings_and_says_so(org):
    texts, stars = generated.rated(260, 140, seed=3)
    with tenant_context(org):
        Feedback.objects.bulk_create(
            Feedback(
                organization=org,
                external_id=f"r{i}",
                created_at=dt.datetime.combine(AS_OF, NOON),
                source="review",
                rating=star,
                text=text,
            )
            for i, (text, star) in enumerate(zip(texts, stars, strict=True))
        )
    result = _run(org)
    assert result["model"] == "rated"
    with tenant_context(org):
        run = ResearchRun.objects.get()
        assert run.model == "rated"
        assert run.model_sentence.startswith("Trained on your 400 rated reviews")
        assert run.cv["macro_f1"] > run.cv["lexicon_macro_f1"]
        jams = FeedbackInsight.objects.filter(feedback__text__contains="zip jams")
        glides = FeedbackInsight.objects.filter(feedback__text__contains="zip glides")
        assert sum(i.sentiment < 0 for i in jams) >= 0.9 * jams.count()
        assert sum(i.sentiment > 0 for i in glides) >= 0.9 * glides.count()


@pytest.mark.django_db
def test_too_few_ratings_keep_the_word_list(org):
    texts, stars = generated.rated(30, 10, seed=4)
    with tenant_context(org):
        for i, (text, star) in enumerate(zip(texts, stars, strict=True)):
            Feedback.objects.create(
                organization=org,
                external_id=f"r{i}",
                created_at=dt.datetime.combine(AS_OF, NOON),
                rating=star,
                text=text,
            )
    assert _run(org)["model"] == "lexicon"
    with tenant_context(org):
        assert "at least 200" in ResearchRun.objects.get().model_sentence


@pytest.mark.django_db
def test_rerunning_is_idempotent_and_keeps_runs_as_history(org):
    plant(org, per_person=2)
    first = _run(org)
    with tenant_context(org):
        before = [(t.label, t.size, t.by_segment) for t in Theme.objects.all()]
        insights = sorted(
            FeedbackInsight.objects.values_list("feedback_id", "sentiment", "phrases")
        )
    second = _run(org)
    assert {k: v for k, v in first.items() if k not in ("seconds", "run")} == {
        k: v for k, v in second.items() if k not in ("seconds", "run")
    }
    with tenant_context(org):
        assert [(t.label, t.size, t.by_segment) for t in Theme.objects.all()] == before
        assert (
            sorted(FeedbackInsight.objects.values_list("feedback_id", "sentiment", "phrases"))
            == insights
        )
        assert ResearchRun.objects.count() == 2
        assert set(Theme.objects.values_list("run_id", flat=True)) == {second["run"]}
        # every insight names a theme of the latest run (or none)
        assert (
            not FeedbackInsight.objects.exclude(theme__isnull=True)
            .exclude(theme__run_id=second["run"])
            .exists()
        )


@pytest.mark.django_db
def test_feedback_after_as_of_is_left_out(org):
    plant(org, per_person=1)
    with tenant_context(org):
        Feedback.objects.create(
            organization=org,
            external_id="later",
            created_at=dt.datetime.combine(AS_OF + dt.timedelta(days=3), NOON),
            text="The delivery was late again.",
        )
    result = _run(org)
    with tenant_context(org):
        assert not FeedbackInsight.objects.filter(feedback__external_id="later").exists()
        assert result["feedback"] == Feedback.objects.count() - 1


@pytest.mark.django_db
def test_an_organisation_without_feedback_still_gets_a_run(org):
    with CaptureQueriesContext(connection) as queries:
        result = _run(org, as_of=None)
    assert result["feedback"] == 0 and result["themes"] == 0
    assert "No feedback yet" in result["message"]
    assert _real(queries) < 25  # of which about half compute "what changed"
    with tenant_context(org):
        run = ResearchRun.objects.get()
        assert run.summary["feedback"] == 0 and run.changes == []
        assert not Theme.objects.exists()


@pytest.mark.django_db
def test_queries_do_not_grow_with_the_feedback(org):
    plant(org, per_person=1)
    with CaptureQueriesContext(connection) as small:
        _run(org)
    plant_more(org)
    with CaptureQueriesContext(connection) as large:
        _run(org)
    # one query per theme saved (at most 8); none per feedback item
    assert _real(large) <= _real(small) + 8 and _real(large) < 40


def _real(queries) -> int:
    """Queries other than PostgreSQL's per-query tenant settings and savepoints."""
    return sum(
        not q["sql"].startswith(("SELECT set_config", "SAVEPOINT", "RELEASE SAVEPOINT"))
        for q in queries.captured_queries
    )


def plant_more(org) -> None:
    texts, _ = generated.feedback({"delivery": 100, "price": 100}, seed=9)
    with tenant_context(org):
        Feedback.objects.bulk_create(
            Feedback(
                organization=org,
                external_id=f"more-{i}",
                created_at=dt.datetime.combine(AS_OF, NOON),
                text=text,
            )
            for i, text in enumerate(texts)
        )


# --- the customer and segment panels ------------------------------------------------------


@pytest.mark.django_db
def test_the_customer_page_shows_what_they_told_you(org, owner_client):
    from django.test import RequestFactory
    from django.urls import reverse

    from research.models import Survey, SurveyResponse
    from research.selectors import customer_panel

    world = plant(org, per_person=2)
    _run(org)
    customer = world["people"]["Fading"][0]
    with tenant_context(org):
        Feedback.objects.create(
            organization=org,
            external_id="angry",
            customer=customer,
            created_at=dt.datetime.combine(AS_OF, NOON),
            text="Rude courier, terrible delivery, never again.",
        )
        survey = Survey.objects.create(
            organization=org,
            name="How did we do?",
            questions=[
                {"type": "nps", "text": "Would you recommend us?"},
                {"type": "text", "text": "What should we improve?"},
            ],  # fmt: skip
        )
        SurveyResponse.objects.create(
            organization=org, survey=survey, customer=customer, channel="personal",
            answers=[3, "Faster parcels please"],
        )  # fmt: skip
        # a request with no membership (a job, a command) still gets the panel
        panel = customer_panel(request=RequestFactory().get("/"), customer=customer)
    items = panel["context"]["feedback"]
    assert items[0]["text"].startswith("Rude courier")
    assert items[0]["sentiment"] == "" and not items[0]["analysed"]  # after the run
    assert all(i["sentiment"] in {"positive", "mixed", "negative"} for i in items[1:])
    assert any(i["theme"] for i in items[1:])
    assert panel["context"]["responses"][0]["answers"][1] == {
        "question": "What should we improve?",
        "answer": "Faster parcels please",
    }
    page = owner_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert "What they told you" in page
    assert "Faster parcels please" in page and "Rude courier" in page
    assert 'id="feedback-h"' not in page  # the old section is gone


@pytest.mark.django_db
def test_the_segment_page_shows_what_they_praise_and_complain_about(org, owner_client):
    from django.urls import NoReverseMatch, reverse

    world = plant(org, per_person=2)
    with tenant_context(org):
        fading = world["people"]["Fading"]
        for i, text in enumerate(
            [
                "The courier was rude and the parcel arrived soaked.",
                "Late delivery again and the courier was rude to my mum.",
                "Rude courier, dented parcel, awful.",
            ]
            + [f"Lovely soft wool jumper, gorgeous colour number {k}." for k in range(10)]
        ):
            Feedback.objects.create(
                organization=org, external_id=f"voice-{i}", customer=fading[i],
                created_at=dt.datetime.combine(AS_OF, NOON), text=text,
            )  # fmt: skip
        quiet = Segment.objects.create(organization=org, kind="cluster", name="Quiet", key="q")
    _run(org)
    segment = world["segments"]["Fading"]
    page = owner_client.get(reverse("segmentation:segment_detail", args=[segment.pk]))
    text = page.content.decode()
    assert "What they praise and complain about" in text
    assert "Fading Small-Basket Shoppers mention delivery" in text
    try:
        survey_new = reverse("research:survey_new")
    except NoReverseMatch:  # the survey pages come from another part of the work
        survey_new = None
    if survey_new:
        assert "Ask them in a survey" in text and f"{survey_new}?segment={segment.pk}" in text
    from research.selectors import segment_panel

    with tenant_context(org):
        panel = segment_panel(request=None, segment=segment)["context"]
        assert panel["themes"] and all(t["sentence"] for t in panel["themes"])
        praise, complaints = panel["groups"]
        assert any("rude courier" in p or "courier" in p for p in complaints["phrases"])
        assert any("wool" in p for p in praise["phrases"])
        assert complaints["quotes"] and praise["quotes"]
        # a segment whose members said nothing has no panel
        assert segment_panel(request=None, segment=quiet) is None


@pytest.mark.django_db
def test_selectors_for_the_pages(org):
    from research.selectors import (
        feedback_list,
        latest_run,
        theme_mentions_by_week,
        themes_current,
    )

    world = plant(org, per_person=1)
    with tenant_context(org):
        assert latest_run() is None and not themes_current().exists()
    _run(org)
    with tenant_context(org):
        run = latest_run()
        themes = list(themes_current())
        assert themes and all(t.run_id == run.pk for t in themes)
        weeks = theme_mentions_by_week(themes[0])
        assert sum(w["count"] for w in weeks) == themes[0].size
        assert all(w["week"].weekday() == 0 for w in weeks)
        assert [w["week"] for w in weeks] == sorted(w["week"] for w in weeks)
        on_theme = feedback_list({"theme": themes[0].pk})
        assert on_theme.count() == themes[0].size
        assert all(f.insight.theme_id == themes[0].pk for f in on_theme[:10])
        negative = feedback_list({"sentiment": "negative"})
        assert all(f.insight.sentiment <= -0.05 for f in negative)
        fading = feedback_list({"segment": world["segments"]["Fading"]})
        people = {c.pk for c in world["people"]["Fading"]}
        assert fading.exists() and all(f.customer_id in people for f in fading)
        assert feedback_list({"q": "courier"}).count() == (
            Feedback.objects.filter(text__icontains="courier").count()
        )
