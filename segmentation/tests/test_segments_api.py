"""The segments and personas API (CONTRACT.md): shapes, members, persona edits,
write permissions, and 404 for another organisation's ids."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from segmentation.models import Persona, Segment, SegmentKind
from segmentation.services.rules import rule_segment_create
from segmentation.tests.factories import planted_run


@pytest.fixture
def live(org):
    run, truth = planted_run(org)
    with tenant_context(org):
        rule = rule_segment_create(
            organization=org,
            name="Big spenders",
            rule={
                "op": "and",
                "conditions": [{"field": "total_spent", "operator": "gt", "value": 300}],
            },
        )
    return run, truth, rule


def test_segments_list_has_the_contract_shape(api_read, live):
    run, truth, rule = live
    response = api_read.get("/api/v1/segments/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"next", "previous", "results", "count"}
    kinds = {s["kind"] for s in body["results"]}
    assert kinds == {"cluster", "rfm", "rule"}
    for item in body["results"]:
        assert {"id", "name", "kind", "parent_id", "size", "profile", "persona"} <= set(item)
    clusters = [s for s in body["results"] if s["kind"] == "cluster" and s["parent_id"] is None]
    assert len(clusters) == run.chosen_k
    assert sum(s["size"] for s in clusters) == len(truth)
    for s in clusters:
        persona = s["persona"]
        assert {"id", "name", "summary", "traits", "actions"} <= set(persona)
        assert persona["name"] == s["name"]
    assert all(s["persona"] is None for s in body["results"] if s["kind"] != "cluster")
    assert all(s["parent_id"] is None for s in body["results"] if s["kind"] != "cluster")
    ruled = next(s for s in body["results"] if s["kind"] == "rule")
    assert ruled["id"] == rule.pk and ruled["rule"]["conditions"][0]["field"] == "total_spent"
    only_rfm = api_read.get("/api/v1/segments/?kind=rfm").json()["results"]
    assert only_rfm and {s["kind"] for s in only_rfm} == {"rfm"}


def test_segment_detail_and_members(api_read, live, org):
    run, truth, _ = live
    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
    detail = api_read.get(f"/api/v1/segments/{segment.pk}/").json()
    assert detail["id"] == segment.pk
    assert detail["profile"]["features"]  # the full profile on the detail
    members = api_read.get(f"/api/v1/segments/{segment.pk}/members/?page_size=1000").json()
    assert members["count"] == segment.size
    first = members["results"][0]
    assert set(first) == {
        "id",
        "external_id",
        "email",
        "name",
        # issue 16: what an integration needs to decide whom to sync
        "accepts_email",
        "accepts_sms",
        "email_consent_at",
        "sms_consent_at",
        "updated_at",
    }
    assert {m["id"] for m in members["results"]} <= set(truth.index)
    paged = api_read.get(f"/api/v1/segments/{segment.pk}/members/?page_size=10").json()
    assert len(paged["results"]) == 10 and paged["next"]


def test_personas_list_and_patch_marks_human_edits(api, live, org):
    listing = api.get("/api/v1/personas/?page_size=200").json()
    with tenant_context(org):
        # one persona per segment found by machine learning, sub-segments included
        n_clusters = Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True).count()
    assert n_clusters >= live[0].chosen_k
    assert len(listing["results"]) == n_clusters
    persona_id = listing["results"][0]["id"]
    response = api.patch(
        f"/api/v1/personas/{persona_id}/",
        {"name": "Weekend gardeners", "traits": ["Love roses"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["name"] == "Weekend gardeners"
    assert sorted(body["human_edited_fields"]) == ["name", "traits"]
    with tenant_context(org):
        persona = Persona.objects.get(pk=persona_id)
        assert persona.segment.name == "Weekend gardeners"
    segment = api.get(f"/api/v1/segments/{persona.segment_id}/").json()
    assert segment["name"] == "Weekend gardeners"
    # reset hands a field back to the machine
    body = api.patch(
        f"/api/v1/personas/{persona_id}/", {"reset_fields": ["name"]}, format="json"
    ).json()
    assert body["human_edited_fields"] == ["traits"]


def test_persona_patch_rejects_unknown_fields_and_bad_values(api, live):
    persona_id = api.get("/api/v1/personas/").json()["results"][0]["id"]
    response = api.patch(f"/api/v1/personas/{persona_id}/", {"segment": 3}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"segment": "This field cannot be edited."}
    response = api.patch(f"/api/v1/personas/{persona_id}/", {"name": ""}, format="json")
    assert response.status_code == 400
    assert "error" in response.json()


def test_a_read_key_cannot_edit_a_persona(api_read, live):
    persona_id = api_read.get("/api/v1/personas/").json()["results"][0]["id"]
    response = api_read.patch(f"/api/v1/personas/{persona_id}/", {"name": "X"}, format="json")
    assert response.status_code == 403


def test_personas_cannot_be_replaced_created_or_deleted(api, live):
    persona_id = api.get("/api/v1/personas/").json()["results"][0]["id"]
    assert (
        api.put(f"/api/v1/personas/{persona_id}/", {"name": "X"}, format="json").status_code == 405
    )
    assert api.delete(f"/api/v1/personas/{persona_id}/").status_code == 405
    assert api.post("/api/v1/personas/", {"name": "X"}, format="json").status_code == 405


def test_a_viewer_session_cannot_edit_a_persona(live, viewer):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(viewer)
    persona_id = client.get("/api/v1/personas/").json()["results"][0]["id"]
    response = client.patch(f"/api/v1/personas/{persona_id}/", {"name": "X"}, format="json")
    assert response.status_code == 403


def test_another_organisation_gets_404(live, other_org, org):
    from rest_framework.test import APIClient

    from accounts.tests.factories import make_api_key

    _, raw = make_api_key(other_org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).first()
        persona = Persona.objects.first()
    assert client.get("/api/v1/segments/").json()["results"] == []
    assert client.get(f"/api/v1/segments/{segment.pk}/").status_code == 404
    assert client.get(f"/api/v1/segments/{segment.pk}/members/").status_code == 404
    assert client.get(f"/api/v1/personas/{persona.pk}/").status_code == 404
    assert (
        client.patch(f"/api/v1/personas/{persona.pk}/", {"name": "x"}, format="json").status_code
        == 404
    )


def test_rule_segments_can_be_previewed_and_created_through_the_api(api, live):
    rule = {"op": "and", "conditions": [{"field": "orders_count", "operator": "gte", "value": 5}]}
    preview = api.post("/api/v1/segments/rules/preview/", {"rule": rule}, format="json").json()
    assert preview["size"] > 0 and preview["total"] == len(live[1])
    created = api.post("/api/v1/segments/rules/", {"name": "Regulars", "rule": rule}, format="json")
    assert created.status_code == 201
    assert created.json()["size"] == preview["size"]
    bad = api.post(
        "/api/v1/segments/rules/",
        {"name": "Bad", "rule": {"op": "and", "conditions": [{"field": "x", "operator": "eq"}]}},
        format="json",
    )
    assert bad.status_code == 400
    assert "unknown field 'x'" in bad.json()["error"]["message"]


def test_the_openapi_schema_documents_segments_and_personas(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/segments/",
        "/api/v1/segments/{id}/",
        "/api/v1/segments/{id}/members/",
        "/api/v1/personas/",
        "/api/v1/personas/{id}/",
    ):
        assert path in paths, path
    assert "patch" in paths["/api/v1/personas/{id}/"]
