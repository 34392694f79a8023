"""The research pages: the overview, a theme's page, the feedback list and "Run the
analysis now". Rows are made directly (a run, its themes, insights and feedback), so
these tests do not depend on the analysis itself."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import NoReverseMatch, reverse

from accounts.tenancy import tenant_context
from core.models import Job

AS_OF = dt.date(2026, 11, 20)


def _at(days_before: int) -> dt.datetime:
    day = AS_OF - dt.timedelta(days=days_before)
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def _feedback(org, n, *, text, source, sentiment, theme=None, customer=None, days=1, rating=None):
    from customers.models import Feedback
    from research.models import FeedbackInsight

    item = Feedback.objects.create(
        organization=org,
        external_id=f"F{Feedback.objects.count() + 1}-{n}",
        customer=customer,
        created_at=_at(days),
        source=source,
        rating=rating,
        text=text,
    )
    if sentiment is not False:
        FeedbackInsight.objects.create(
            organization=org, feedback=item, sentiment=sentiment, theme=theme
        )
    return item


@pytest.fixture
def data(org):
    """A shop with feedback read by one run: two themes (delivery, the larger and
    mostly negative; staff, positive), one segment mentioning delivery 3× more often."""
    from customers.models import Customer
    from research.models import ResearchRun, Theme
    from segmentation.models import Segment

    with tenant_context(org):
        segment = Segment.objects.create(
            organization=org, kind="rule", name="Fading Small-Basket Shoppers", key="rule-fading"
        )
        ann = Customer.objects.create(
            organization=org, external_id="C1", first_name="Ann", last_name="Lee"
        )
        run = ResearchRun.objects.create(
            organization=org,
            as_of=AS_OF,
            feedback_count=20,
            text_count=20,
            model="rated",
            model_sentence=(
                "Trained on your 2,930 rated reviews: agrees with the stars 96 times in 100, "
                "against 87 for the general word list."
            ),
            cv={
                "n": 2930,
                "folds": 5,
                "macro_f1": 0.874,
                "accuracy": 0.963,
                "lexicon_macro_f1": 0.756,
                "lexicon_accuracy": 0.868,
            },
        )
        staff = Theme.objects.create(
            organization=org,
            run=run,
            position=1,
            label="Staff",
            phrases=["staff", "cashier"],
            size=6,
            sentiment=0.6,
            trend={"last_30d": 6, "prev_30d": 0, "change": None, "trend": "too few"},
        )
        delivery = Theme.objects.create(
            organization=org,
            run=run,
            position=0,
            label="Delivery",
            phrases=["delivery", "courier", "parcel"],
            size=10,
            sentiment=-0.4,
            trend={"last_30d": 8, "prev_30d": 2, "change": 3.0, "trend": "growing"},
            by_segment=[
                {
                    "segment_id": segment.pk,
                    "count": 6,
                    "share": 0.6,
                    "share_others": 0.2,
                    "index": 3.0,
                    "notable": True,
                    "sentence": (
                        "Fading Small-Basket Shoppers mention delivery 3× more often than others."
                    ),
                },
                {"segment_id": 999999, "count": 1, "share": 0.1, "index": 1.0, "notable": False},
            ],
        )
        first = None
        for i in range(10):
            item = _feedback(
                org,
                i,
                text=f"The delivery was late again, parcel number {i} dented.",
                source="review",
                sentiment=-0.5 if i < 7 else 0.4,
                theme=delivery,
                customer=ann if i == 0 else None,
                days=1 + i if i < 8 else 40 + i,
                rating=2,
            )
            first = first or item
        delivery.examples = [{"feedback_id": first.pk, "text": first.text}]
        delivery.save()
        for i in range(6):
            _feedback(
                org,
                100 + i,
                text=f"The cashier was so kind and helpful, visit {i}.",
                source="support",
                sentiment=0.7,
                theme=staff,
                days=2 + i,
                rating=5,
            )
        for i in range(4):  # read, no theme, a month earlier: all positive
            _feedback(
                org, 200 + i, text="Lovely shop.", source="review", sentiment=0.8, days=35 + i
            )
    return {"run": run, "delivery": delivery, "staff": staff, "segment": segment, "ann": ann}


def _text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _url_or_none(name, **kwargs):
    try:
        return reverse(name, **kwargs)
    except NoReverseMatch:
        return None


# --- overview ------------------------------------------------------------------


def test_overview_without_feedback_explains_and_links_to_import(owner_client):
    response = owner_client.get(reverse("research:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hear what your customers say" in html
    assert reverse("customers:import_new") in html
    assert "Run the analysis" not in html


def test_overview_with_feedback_but_no_run_offers_to_run_it(org, owner_client):
    with tenant_context(org):
        _feedback(org, 1, text="Great!", source="review", sentiment=False)
    html = owner_client.get(reverse("research:overview")).content.decode()
    assert "has not been read yet" in html
    assert reverse("research:run") in html
    assert "Run the analysis" in html


def test_overview_with_a_run(data, owner_client):
    response = owner_client.get(reverse("research:overview"))
    assert response.status_code == 200
    text = _text(response)
    html = response.content.decode()
    # last 30 days up to 20 Nov: 7 negative + 1 positive delivery, 6 positive staff
    # → 7 of 14 positive (50%), 7 negative (50%): "mostly unhappy"; the 30 days
    # before: 2 positive delivery + 4 positive unthemed → 0% negative.
    assert (
        "Customers are mostly unhappy: 50% of what they said in the last 30 days was negative, up from 0%."
        in text
    )
    # themes in size order, each with its count, tone, trend and actions
    assert text.index("Delivery") < text.index("Staff")
    assert "10 pieces of feedback mention it" in text
    assert "Mostly negative: 3 positive, 7 negative, 0 mixed or neutral." in text
    assert "Growing" in text and "8 mentions in the last 30 days, 2 in the 30 before" in text
    assert "Fading Small-Basket Shoppers mention delivery 3× more often than others." in text
    assert "The delivery was late again, parcel number 0 dented." in text
    assert reverse("research:theme", args=[data["delivery"].pk]) in html
    assert reverse("segmentation:segment_detail", args=[data["segment"].pk]) in html
    survey_new = _url_or_none("research:survey_new")
    if survey_new:
        assert f"{survey_new}?segment={data['segment'].pk}" in html
    # month chart with its table, sources, links
    assert 'id="months-table"' in html and "November 2026" in text and "October 2026" in text
    assert 'role="img"' in html
    assert 'id="sources-table"' in html and "Review" in text and "Support" in text
    assert reverse("research:feedback") in html
    # about this model: plain words, then the figures
    assert 'class="about-model"' in html
    assert "agrees with the stars 96 times in 100" in text
    assert "macro-F1 0.874" in text and "macro-F1 0.756" in text
    assert "NMF" in text and "TF-IDF" in text


def test_overview_run_button_only_for_those_who_may_run_it(data, client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("research:overview"))
    assert response.status_code == 200
    assert "Run the analysis now" not in response.content.decode()


# --- theme ---------------------------------------------------------------------


def test_theme_page(data, owner_client):
    delivery = data["delivery"]
    response = owner_client.get(reverse("research:theme", args=[delivery.pk]))
    assert response.status_code == 200
    text = _text(response)
    html = response.content.decode()
    assert "Delivery" in text and "delivery, courier, parcel" in text
    assert "Growing" in text
    # by segment: the segment linked, its share and index; the erased segment left out
    assert reverse("segmentation:segment_detail", args=[data["segment"].pk]) in html
    assert "60%" in text and "3.0×" in text
    assert "999999" not in html
    # the chart and its table, the quote with its customer, the feedback newest first
    assert 'id="weeks-table"' in html
    assert "Ann Lee" in text
    assert reverse("customers:detail", args=[data["ann"].pk]) in html
    rows = re.findall(r'data-feedback="(\d+)"', html)
    assert len(rows) == 10
    assert text.index("parcel number 0") < text.index("parcel number 7")


def test_theme_page_with_nothing_yet(org, owner_client):
    from research.models import ResearchRun, Theme

    with tenant_context(org):
        run = ResearchRun.objects.create(organization=org, as_of=AS_OF)
        theme = Theme.objects.create(organization=org, run=run, label="Prices", size=0)
    response = owner_client.get(reverse("research:theme", args=[theme.pk]))
    assert response.status_code == 200
    text = _text(response)
    assert "Prices" in text and "No text to read yet." in text
    assert "Not worked out per segment" in text
    assert "No feedback is linked to this topic" in text


def test_theme_feedback_is_paginated(data, owner_client, org):
    with tenant_context(org):
        for i in range(45):
            _feedback(
                org, 500 + i, text=f"Courier story {i}", source="review", sentiment=-0.3,
                theme=data["delivery"], days=3,
            )  # fmt: skip
    url = reverse("research:theme", args=[data["delivery"].pk])
    first = owner_client.get(url).content.decode()
    assert len(re.findall(r'data-feedback="', first)) == 50
    assert "Page 1 of 2" in first
    second = owner_client.get(url + "?page=2").content.decode()
    assert len(re.findall(r'data-feedback="', second)) == 5


def test_another_organisations_theme_is_404(data, client, other_org, make_member):
    from accounts.models import Role

    client.force_login(make_member(other_org, Role.OWNER, "rival@example.com"))
    assert client.get(reverse("research:theme", args=[data["delivery"].pk])).status_code == 404


# --- feedback ------------------------------------------------------------------


def _ids(response) -> set[int]:
    return {int(x) for x in re.findall(r'data-feedback="(\d+)"', response.content.decode())}


def test_feedback_list_and_filters(data, owner_client, org):
    url = reverse("research:feedback")
    everything = owner_client.get(url)
    assert everything.status_code == 200
    assert len(_ids(everything)) == 20
    assert "Lovely shop." in everything.content.decode()

    support = owner_client.get(url, {"source": "support"})
    assert len(_ids(support)) == 6
    negative = owner_client.get(url, {"sentiment": "negative"})
    assert len(_ids(negative)) == 7
    positive = owner_client.get(url, {"sentiment": "positive", "source": "review"})
    assert len(_ids(positive)) == 3 + 4
    staff = owner_client.get(url, {"theme": data["staff"].pk})
    assert len(_ids(staff)) == 6
    words = owner_client.get(url, {"q": "PARCEL NUMBER 3"})
    assert len(_ids(words)) == 1
    assert "Clear filters" in words.content.decode()

    with tenant_context(org):
        _feedback(org, 900, text="Meh.", source="review", sentiment=0.0)
    mixed = owner_client.get(url, {"sentiment": "mixed"})
    assert len(_ids(mixed)) == 1
    assert "Mixed or neutral" in mixed.content.decode()


def test_feedback_of_one_customer(data, owner_client, other_org):
    url = reverse("research:feedback")
    response = owner_client.get(url, {"customer": data["ann"].pk})
    assert len(_ids(response)) == 1
    assert "Only feedback from" in _text(response) and "Ann Lee" in _text(response)
    # with another filter, the customer stays
    html = owner_client.get(url, {"customer": data["ann"].pk, "sentiment": "positive"})
    assert not _ids(html)
    assert f'name="customer" value="{data["ann"].pk}"' in html.content.decode()
    # not a customer of this organisation (or not a number): everyone, with a note
    from customers.models import Customer

    with tenant_context(other_org):
        rival = Customer.objects.create(organization=other_org, external_id="R1")
    for value in (rival.pk, "abc"):
        response = owner_client.get(url, {"customer": value})
        assert len(_ids(response)) == 20
        assert "no customer of yours has that id" in response.content.decode()


def test_feedback_bad_filters_are_named_not_a_traceback(data, owner_client):
    url = reverse("research:feedback")
    response = owner_client.get(url, {"theme": "abc", "sentiment": "angry", "source": "fax"})
    assert response.status_code == 200
    text = _text(response)
    assert "Theme: that theme is not in the latest analysis" in text
    assert "Sentiment: choose positive, negative or mixed." in text
    assert "Source: “fax” is not one of your feedback sources" in text
    assert len(_ids(response)) == 20  # the bad filters are left out
    html = response.content.decode()
    assert re.search(r'<select[^>]*aria-describedby="id_theme-error"', html)
    assert re.search(r'<select[^>]*aria-invalid="true"', html)
    assert 'id="id_theme-error" role="alert"' in html


def test_feedback_no_match_and_empty(owner_client, data):
    url = reverse("research:feedback")
    assert "No feedback matches" in owner_client.get(url, {"q": "zebra"}).content.decode()


def test_feedback_empty_state(owner_client):
    html = owner_client.get(reverse("research:feedback")).content.decode()
    assert "No feedback yet" in html
    assert reverse("customers:import_new") in html


def test_feedback_is_paginated_by_50(org, owner_client):
    with tenant_context(org):
        for i in range(55):
            _feedback(org, i, text=f"note {i}", source="review", sentiment=False, days=i)
    url = reverse("research:feedback")
    first = owner_client.get(url, {"source": "review"})
    assert len(_ids(first)) == 50
    html = first.content.decode()
    assert "source=review&amp;page=2" in html
    assert len(_ids(owner_client.get(url, {"source": "review", "page": 2}))) == 5


def test_feedback_of_another_organisation_is_not_listed(data, client, other_org, make_member):
    from accounts.models import Role

    client.force_login(make_member(other_org, Role.OWNER, "rival@example.com"))
    response = client.get(reverse("research:feedback"))
    assert not _ids(response)
    assert "No feedback yet" in response.content.decode()


# --- run -----------------------------------------------------------------------


def test_run_starts_the_research_job(data, owner_client, org):
    response = owner_client.post(reverse("research:run"))
    assert response.status_code == 302
    assert response["Location"] == reverse("research:overview")
    with tenant_context(org):
        job = Job.objects.get(kind="research")
    assert job.title.startswith("Research")
    html = owner_client.get(reverse("research:overview")).content.decode()
    assert f'id="job-{job.pk}"' in html


def test_run_with_htmx_answers_the_progress(data, owner_client):
    response = owner_client.post(reverse("research:run"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "job-progress" in response.content.decode()


def test_run_without_feedback_says_so(org, owner_client):
    response = owner_client.post(reverse("research:run"), follow=True)
    assert "no feedback to analyse yet" in response.content.decode()
    with tenant_context(org):
        assert not Job.objects.filter(kind="research").exists()


def test_viewer_can_read_but_not_run(data, client, viewer, org):
    client.force_login(viewer)
    for url in (
        reverse("research:overview"),
        reverse("research:feedback"),
        reverse("research:theme", args=[data["delivery"].pk]),
    ):
        assert client.get(url).status_code == 200, url
    assert client.post(reverse("research:run")).status_code == 403
    with tenant_context(org):
        assert not Job.objects.filter(kind="research").exists()


def test_run_is_post_only(owner_client):
    assert owner_client.get(reverse("research:run")).status_code == 405


def test_months_and_weeks_are_the_shops_own(org, owner_client):
    """Feedback given at 20:00 UTC on 31 October is 1 November in Auckland."""
    from customers.models import Feedback
    from research.models import ResearchRun, Theme

    org.time_zone = "Pacific/Auckland"
    org.save()
    with tenant_context(org):
        run = ResearchRun.objects.create(organization=org, as_of=dt.date(2026, 11, 5))
        theme = Theme.objects.create(organization=org, run=run, label="Delivery", size=1)
        item = _feedback(org, 1, text="Late parcel.", source="review", sentiment=-0.5, theme=theme)
        Feedback.objects.filter(pk=item.pk).update(
            created_at=dt.datetime(2026, 10, 31, 20, tzinfo=dt.UTC)
        )
    html = owner_client.get(reverse("research:overview")).content.decode()
    assert 'data-month="2026-11"' in html and 'data-month="2026-10"' not in html
    html = owner_client.get(reverse("research:theme", args=[theme.pk])).content.decode()
    # Sunday 1 November local time: the week starting Monday 26 October
    assert re.search(r'data-week="2026-10-26"><th scope="row">[^<]*</th><td class="num">1<', html)


def test_pages_after_a_real_run_on_planted_feedback(org, owner_client):
    """The research step itself (research/analysis.py) on feedback with planted topics
    per segment: the pages show what it found, in words."""
    from research.tests.test_analysis import _run, plant

    world = plant(org)
    _run(org)
    response = owner_client.get(reverse("research:overview"))
    assert response.status_code == 200
    text = _text(response)
    html = response.content.decode()
    # 36% positive (33% the month before), 16% negative
    assert re.search(
        r"Customers are divided: \d+% of what they said in the last 30 days was positive "
        r"\((up|down) from \d+%\) and \d+% negative\.",
        text,
    )
    assert "Delivery" in text
    fading = world["segments"]["Fading"]
    assert "mention delivery" in text and "more often than others" in text
    assert reverse("segmentation:segment_detail", args=[fading.pk]) in html
    themes = [int(x) for x in re.findall(r'data-theme="(\d+)"', html)]
    assert len(themes) >= 3
    for pk in themes:
        page = owner_client.get(reverse("research:theme", args=[pk]))
        assert page.status_code == 200
        assert 'id="weeks-table"' in page.content.decode()
    listed = owner_client.get(reverse("research:feedback"), {"theme": themes[0]})
    assert len(_ids(listed)) == 50
