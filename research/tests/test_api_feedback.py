"""The feedback API: the list and its filters, one item, the bulk write (the same
machinery and answer as `events/bulk/`), read keys only read, and another
organisation's feedback answers 404."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer, Feedback
from research.models import FeedbackInsight, ResearchRun, Theme

pytestmark = pytest.mark.django_db

URL = "/api/v1/feedback/"
ITEM_FIELDS = {
    "id",
    "external_id",
    "customer",
    "customer_id",
    "created_at",
    "source",
    "rating",
    "text",
    "sentiment",
    "themes",
    "properties",
}


def _at(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 12, tzinfo=dt.UTC)


@pytest.fixture
def world(org):
    """Three feedback items of `org`: one analysed into a theme, one not, one anonymous."""
    with tenant_context(org):
        ada = Customer.objects.create(organization=org, external_id="c-1", first_name="Ada")
        run = ResearchRun.objects.create(organization=org)
        theme = Theme.objects.create(organization=org, run=run, label="delivery")
        late = Feedback.objects.create(
            organization=org,
            external_id="f-1",
            customer=ada,
            created_at=_at(1),
            source="review",
            rating=2,
            text="Delivery was late",
        )
        FeedbackInsight.objects.create(organization=org, feedback=late, sentiment=-0.6, theme=theme)
        kind = Feedback.objects.create(
            organization=org,
            external_id="f-2",
            customer=ada,
            created_at=_at(10),
            source="support",
            text="Thanks for the help",
            properties={"ticket": "T-1"},
        )
        anon = Feedback.objects.create(
            organization=org, external_id="f-3", created_at=_at(20), source="review", rating=5
        )
    return {"ada": ada, "theme": theme, "late": late, "kind": kind, "anon": anon}


def _ids(body) -> list[str]:
    return [item["external_id"] for item in body["results"]]


def test_list_shape_and_item(api_read, world):
    r = api_read.get(URL)
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert body["count"] == 3 and _ids(body) == ["f-3", "f-2", "f-1"]  # newest first
    late = next(i for i in body["results"] if i["external_id"] == "f-1")
    assert set(late) == ITEM_FIELDS
    assert late["customer"] == world["ada"].pk and late["customer_id"] == "c-1"
    assert (late["rating"], late["sentiment"]) == (2.0, -0.6)
    assert late["themes"] == [world["theme"].pk]
    anon = api_read.get(f"{URL}{world['anon'].pk}/").json()
    assert (anon["customer"], anon["customer_id"], anon["text"]) == (None, None, "")
    assert (anon["sentiment"], anon["themes"]) == (None, [])  # not analysed yet
    kind = api_read.get(f"{URL}{world['kind'].pk}/").json()
    assert kind["rating"] is None and kind["properties"] == {"ticket": "T-1"}
    assert api_read.get(f"{URL}?page_size=1000").status_code == 200


def test_filters(api_read, world):
    def ids(query):
        r = api_read.get(f"{URL}?{query}")
        assert r.status_code == 200, r.content
        return _ids(r.json())

    assert ids(f"customer={world['ada'].pk}") == ["f-2", "f-1"]
    assert ids("customer_id=c-1") == ["f-2", "f-1"]
    assert ids("customer_id=nobody") == []
    assert ids("source=review") == ["f-3", "f-1"]
    assert ids(f"theme={world['theme'].pk}") == ["f-1"]
    assert ids("since=2026-11-10") == ["f-3", "f-2"]
    for bad in ("customer=abc", "theme=x", "since=last-tuesday", "colour=blue"):
        r = api_read.get(f"{URL}?{bad}")
        assert r.status_code == 400, bad
        assert "error" in r.json()


def test_bulk_upsert_keeps_non_numeric_ratings_blank(api, org):
    records = [
        {
            "feedback_id": "R-1",
            "customer_id": "c-9",
            "created_at": "2026-11-21T08:15:00Z",
            "source": "review",
            "rating": "n/a",
            "text": "Lovely mug,\nbut slow delivery.",
        },
        {
            "feedback_id": "R-2",
            "created_at": "2026-11-22",
            "source": "survey",
            "rating": "4/5",
            "text": "Good",
            "channel": "email",
        },
        {"feedback_id": "R-3", "created_at": "2026-11-22", "rating": 5},
        {"feedback_id": "R-4", "created_at": "not a date", "text": "x"},
        {"feedback_id": "R-5", "created_at": "2026-11-22", "rating": "five"},  # nothing left
    ]
    r = api.post(f"{URL}bulk/", records, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) == {"jobs", "created", "updated", "unchanged", "rejected", "errors"}
    assert (body["created"], body["rejected"]) == (3, 2)
    assert {e["index"] for e in body["errors"]} == {3, 4}
    assert {e["field"] for e in body["errors"]} == {"created_at", "text"}
    with tenant_context(org):
        one = Feedback.objects.get(external_id="R-1")
        assert one.rating is None and one.text == "Lovely mug,\nbut slow delivery."
        assert one.customer.external_id == "c-9"  # created, as a file's unknown id is
        two = Feedback.objects.get(external_id="R-2")
        assert two.rating == 4 and two.properties == {"channel": "email"}
        assert Feedback.objects.get(external_id="R-3").rating == 5
    again = api.post(f"{URL}bulk/", records[:3], format="json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert again["jobs"] == []  # nothing changed, nothing to refresh
    listed = api.get(f"{URL}?customer_id=c-9").json()["results"]
    assert [i["external_id"] for i in listed] == ["R-1"] and listed[0]["rating"] is None


def test_segmenta_only_event_types_do_not_apply_to_feedback(api, org):
    """`events/bulk/` refuses the types Segmenta writes itself (`survey_answered`…);
    feedback has no type: such words are a source or a property like any other."""
    events = [
        {
            "event_id": "E-1",
            "customer_id": "c-1",
            "occurred_at": "2026-11-21T08:15:00Z",
            "type": "survey_answered",
        }
    ]
    refused = api.post("/api/v1/events/bulk/", events, format="json").json()
    assert refused["rejected"] == 1 and refused["errors"][0]["field"] == "type"
    records = [
        {
            "feedback_id": "S-1",
            "customer_id": "c-1",
            "created_at": "2026-11-21T08:15:00Z",
            "source": "survey_answered",
            "type": "message_sent",
            "text": "Answered on paper",
        }
    ]
    body = api.post(f"{URL}bulk/", records, format="json").json()
    assert (body["created"], body["rejected"]) == (1, 0), body
    with tenant_context(org):
        item = Feedback.objects.get(external_id="S-1")
    assert item.source == "survey_answered" and item.properties == {"type": "message_sent"}


def test_bulk_names_the_same_refresh_jobs_as_events_bulk(api, org):
    feedback = [{"feedback_id": "J-1", "created_at": "2026-11-21", "text": "Fine"}]
    events = [{"event_id": "J-1", "customer_id": "j", "occurred_at": "2026-11-21", "type": "view"}]
    first = api.post(f"{URL}bulk/", feedback, format="json").json()
    second = api.post("/api/v1/events/bulk/", events, format="json").json()
    assert first["created"] == 1 and second["created"] == 1
    assert first["jobs"], first
    assert sorted(j["kind"] for j in first["jobs"]) == sorted(j["kind"] for j in second["jobs"])


def test_bulk_refusals(api, api_read):
    assert api_read.post(f"{URL}bulk/", [], format="json").status_code == 403
    r = api.post(f"{URL}bulk/", {"feedback_id": "x"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["fields"]["body"]
    too_many = [{"created_at": "2026-11-21", "text": str(i)} for i in range(1001)]
    r = api.post(f"{URL}bulk/", too_many, format="json")
    assert r.status_code == 400 and "At most 1,000" in r.json()["error"]["message"]


def test_read_only_and_another_organisations_feedback(api, api_read, world, other_org):
    from rest_framework.test import APIClient

    from accounts.tests.factories import make_api_key

    item = world["late"].pk
    assert api_read.get(f"{URL}{item}/").status_code == 200
    for method in ("put", "patch", "delete"):
        assert getattr(api, method)(f"{URL}{item}/", {}, format="json").status_code == 405
    _, raw = make_api_key(other_org, "read")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert stranger.get(f"{URL}{item}/").status_code == 404
    assert stranger.get(URL).json()["count"] == 0
    assert stranger.get(f"{URL}?theme={world['theme'].pk}").json()["count"] == 0
    assert api.get(f"{URL}abc/").status_code == 404
