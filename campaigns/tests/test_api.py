"""Campaigns through the API: create, read, change, variants, preview, test send, send,
stats, settings; errors name the field; another organisation's campaign is 404."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.tenancy import tenant_context
from campaigns.models import Campaign
from campaigns.tests import sendworld as w

BASE = "/api/v1/campaigns/"


@pytest.fixture
def world(org):
    with tenant_context(org):
        yes = w.customers(org, 3, "api")
        no = w.customers(org, 2, "apino", email=False)
        segs = w.segments(org, {"Loyal": yes[:2] + no, "New": yes[2:]})
        persona = w.persona(org, segs["New"], name="Newcomer")
    return {"yes": yes, "no": no, "segs": segs, "persona": persona}


def _create(api, world, **extra):
    body = {
        "name": "Spring sale",
        "channel": "email",
        "segment_ids": [world["segs"]["Loyal"].pk, world["segs"]["New"].pk],
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }}, new things at https://shop.example/new",
        "holdout_share": 0,
        **extra,
    }
    return api.post(BASE, body, format="json")


def test_create_read_list_change_delete(api, world):
    answer = _create(api, world, goal="Sell spring")
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["status"] == "draft"
    assert created["channel"] == "email" and created["goal"] == "Sell spring"
    assert created["schedule"] is None and created["variants"] == []
    listed = api.get(BASE).json()
    assert [c["id"] for c in listed["results"]] == [created["id"]]
    one = api.get(f"{BASE}{created['id']}/").json()
    assert one["segment_ids"] == created["segment_ids"]
    changed = api.patch(
        f"{BASE}{created['id']}/", {"name": "Spring", "schedule": "best_hour"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["name"] == "Spring"
    assert changed.json()["schedule"] == {"best_hour": True}
    assert api.delete(f"{BASE}{created['id']}/").status_code == 204
    assert api.get(f"{BASE}{created['id']}/").status_code == 404


def test_errors_name_the_field(api, world):
    answer = _create(api, world, channel="fax")
    assert answer.status_code == 400
    assert "channel" in answer.json()["error"]["fields"]
    answer = _create(api, world, body="Hi {{ first_name ")
    assert answer.status_code == 400
    assert "body" in answer.json()["error"]["message"]
    answer = _create(api, world, holdout_share=2)
    assert "holdout_share" in answer.json()["error"]["fields"]
    answer = _create(api, world, schedule={"at": "tomorrow"})
    assert "schedule" in answer.json()["error"]["fields"]


def test_a_sent_campaign_cannot_be_changed(api, world, org):
    created = _create(api, world).json()
    Campaign.all_objects.filter(pk=created["id"]).update(status="sent")
    answer = api.patch(f"{BASE}{created['id']}/", {"name": "x"}, format="json")
    assert answer.status_code == 409
    assert api.delete(f"{BASE}{created['id']}/").status_code == 409


def test_variants_and_preview_as_a_customer(api, world):
    created = _create(api, world).json()
    answer = api.post(
        f"{BASE}{created['id']}/variants/",
        {
            "name": "For newcomers",
            "persona_id": world["persona"].pk,
            "subject": "Welcome {{ first_name }}",
            "body": "Glad you found us, {{ first_name }}.",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    variant = answer.json()
    assert variant["persona_id"] == world["persona"].pk and variant["is_draft"] is False
    newcomer = world["yes"][2]
    preview = api.get(f"{BASE}{created['id']}/preview/?customer={newcomer.pk}").json()
    assert set(preview) >= {"subject", "html", "text"}
    assert preview["subject"] == f"Welcome {newcomer.first_name}"
    assert preview["variant"] == variant["id"]
    loyal = world["yes"][0]
    preview = api.get(f"{BASE}{created['id']}/preview/?customer={loyal.pk}").json()
    assert preview["subject"] == f"Hello {loyal.first_name}"
    assert 'href="https://shop.example/new"' in preview["html"]  # not tracked
    bad = api.get(f"{BASE}{created['id']}/preview/?customer=abc")
    assert bad.status_code == 400 and "customer" in bad.json()["error"]["fields"]
    answer = api.post(f"{BASE}{created['id']}/variants/", {"name": "x"}, format="json")
    assert answer.status_code == 400 and "body" in answer.json()["error"]["fields"]


def test_a_test_copy_goes_only_to_a_member(api, world, owner):
    created = _create(api, world).json()
    answer = api.post(f"{BASE}{created['id']}/test/", {"to": owner.email}, format="json")
    assert answer.status_code == 200, answer.content
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert mail.outbox[0].subject.startswith("[Test] ")
    answer = api.post(f"{BASE}{created['id']}/test/", {"to": "x@elsewhere.example"}, format="json")
    assert answer.status_code == 400 and "to" in answer.json()["error"]["fields"]
    assert len(mail.outbox) == 1


def test_audit_send_409_and_stats(api, world, django_capture_on_commit_callbacks):
    created = _create(api, world).json()
    audit = api.get(f"{BASE}{created['id']}/audit/").json()
    assert audit["sendable"] == 3 and audit["skipped_no_consent"] == 2
    assert audit["plan"]["per_variant"] > 0
    answer = api.post(f"{BASE}{created['id']}/send/")
    assert answer.status_code == 202, answer.content
    job = answer.json()["job"]
    assert job
    again = api.post(f"{BASE}{created['id']}/send/")
    assert again.status_code == 409
    assert str(job) in again.json()["error"]["message"]
    # the queued job runs (as a worker would)
    from core.jobs import _send
    from core.models import Job

    with django_capture_on_commit_callbacks(execute=True):
        _send(Job.all_objects.get(pk=job))
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in world["yes"])
    stats = api.get(f"{BASE}{created['id']}/stats/").json()
    assert {
        "audience", "sent", "delivered", "bounced", "skipped_no_consent",
        "skipped_frequency_cap", "opened", "clicked", "converted", "revenue", "unsubscribed",
        "holdout", "holdout_conversion_rate", "incremental_revenue", "variants", "by_segment",
        "by_persona", "winner",
    } <= set(stats)  # fmt: skip
    assert stats["sent"] == 3 and stats["skipped_no_consent"] == 2 and stats["winner"] is None
    assert api.get(f"{BASE}{created['id']}/").json()["status"] == "sent"


def test_a_read_key_cannot_send(api_read, api, world):
    created = _create(api, world).json()
    assert api_read.post(f"{BASE}{created['id']}/send/").status_code == 403


def test_settings(api, org):
    assert api.get(f"{BASE}settings/").json()["cap_messages"] is None
    answer = api.put(
        f"{BASE}settings/",
        {"cap_messages": 2, "cap_days": 7, "quiet_start_hour": 20, "quiet_end_hour": 8},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    got = api.get(f"{BASE}settings/").json()
    assert (got["cap_messages"], got["cap_days"], got["quiet_start_hour"]) == (2, 7, 20)
    answer = api.put(f"{BASE}settings/", {"cap_messages": 3, "cap_days": None}, format="json")
    assert answer.status_code == 400 and "cap_days" in answer.json()["error"]["fields"]
    answer = api.put(f"{BASE}settings/", {"quiet_end_hour": 25}, format="json")
    assert "quiet_end_hour" in answer.json()["error"]["fields"]


def test_another_organisations_campaign_is_404(api, other_org):
    with tenant_context(other_org):
        theirs = w.campaign(other_org, [])
    for url in (f"{BASE}{theirs.pk}/", f"{BASE}{theirs.pk}/stats/", f"{BASE}{theirs.pk}/audit/"):
        assert api.get(url).status_code == 404
    assert api.post(f"{BASE}{theirs.pk}/send/").status_code == 404
    assert api.delete(f"{BASE}{theirs.pk}/").status_code == 404
