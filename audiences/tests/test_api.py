"""Audiences through the API: preview, save (a job builds it), read the figures
and the members, export, change, rebuild and delete; read keys only read."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from audiences.models import Audience
from audiences.tests.helpers import segments_world


@pytest.fixture
def world(org):
    return segments_world(org)


def _save(api, world, django_capture_on_commit_callbacks, **extra):
    body = {
        "name": "Loyal minus regulars",
        "definition": {
            "kind": "segments",
            "include": [world["a"].pk],
            "exclude": [world["rule"].pk],
        },
        **extra,
    }
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post("/api/v1/audiences/", body, format="json")
    return answer


def test_preview_without_saving(api, world):
    answer = api.post(
        "/api/v1/audiences/preview/",
        {"definition": {"kind": "segments", "include": [world["a"].pk]}},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["size"] == 20
    assert body["reachable"] == {"email": 10, "sms": 5}
    assert {"expected_conversions", "model", "fairness", "unplaced"} <= set(body)
    assert not Audience.all_objects.exists()


def test_preview_names_the_bad_field(api, world):
    answer = api.post(
        "/api/v1/audiences/preview/", {"definition": {"kind": "segments"}}, format="json"
    )
    assert answer.status_code == 400
    assert "include" in answer.json()["error"]["fields"]


def test_save_builds_and_reads_back(api, world, django_capture_on_commit_callbacks):
    answer = _save(api, world, django_capture_on_commit_callbacks)
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["status"] == "building" and created["job"]
    one = api.get(f"/api/v1/audiences/{created['id']}/").json()
    assert one["status"] == "ready" and one["size"] == 13
    assert one["reachable"] == {"email": 6, "sms": 3}  # 2,4,8,10,14,16 / 4,8,16
    assert one["refreshed_at"]
    listed = api.get("/api/v1/audiences/").json()
    assert [a["id"] for a in listed["results"]] == [created["id"]]

    members = api.get(f"/api/v1/audiences/{created['id']}/members/?page_size=5").json()
    assert len(members["results"]) == 5 and members["next"]
    first = members["results"][0]
    assert set(first) == {"customer", "score", "rank"}
    assert first["customer"]["external_id"] == "C001"


def test_export_is_formula_safe(api, org, world, django_capture_on_commit_callbacks):
    from customers.models import Customer

    with tenant_context(org):
        Customer.objects.filter(external_id="C001").update(first_name='=HYPERLINK("x")')
    created = _save(api, world, django_capture_on_commit_callbacks).json()
    answer = api.get(f"/api/v1/audiences/{created['id']}/export.csv")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    text = b"".join(answer.streaming_content).decode()
    lines = text.splitlines()
    assert lines[0].startswith("rank,customer_id,email")
    assert len(lines) == 1 + 13
    assert "'=HYPERLINK" in text


def test_patch_rebuild_and_delete(api, world, django_capture_on_commit_callbacks):
    created = _save(api, world, django_capture_on_commit_callbacks).json()
    with django_capture_on_commit_callbacks(execute=True):
        changed = api.patch(
            f"/api/v1/audiences/{created['id']}/",
            {"name": "Fading", "definition": {"kind": "segments", "include": [world["b"].pk]}},
            format="json",
        )
    assert changed.status_code == 200, changed.content
    assert api.get(f"/api/v1/audiences/{created['id']}/").json()["size"] == 20
    with django_capture_on_commit_callbacks(execute=True):
        rebuilt = api.post(f"/api/v1/audiences/{created['id']}/rebuild/")
    assert rebuilt.status_code == 202 and rebuilt.json()["job"]
    assert api.delete(f"/api/v1/audiences/{created['id']}/").status_code == 204
    assert api.get(f"/api/v1/audiences/{created['id']}/").status_code == 404


def test_read_key_reads_only(api_read, api, world, django_capture_on_commit_callbacks):
    created = _save(api, world, django_capture_on_commit_callbacks).json()
    assert api_read.get(f"/api/v1/audiences/{created['id']}/").status_code == 200
    assert (
        api_read.post(
            "/api/v1/audiences/",
            {"name": "x", "definition": {"kind": "segments", "include": [world["a"].pk]}},
            format="json",
        ).status_code
        == 403
    )
    assert api_read.delete(f"/api/v1/audiences/{created['id']}/").status_code == 403


def test_unknown_list_parameter_is_refused(api, world):
    answer = api.get("/api/v1/audiences/?colour=blue")
    assert answer.status_code == 400


def test_another_organisations_segment_cannot_be_used(api, other_org):
    other = segments_world(other_org, n=4)
    answer = api.post(
        "/api/v1/audiences/preview/",
        {"definition": {"kind": "segments", "include": [other["a"].pk]}},
        format="json",
    )
    assert answer.status_code == 400
    assert str(other["a"].pk) in answer.json()["error"]["message"]
