"""`GET research/themes/`, `research/themes/{id}/` and `research/summary/`."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from research.models import Theme
from research.tests.test_analysis import _run, plant

pytestmark = pytest.mark.django_db


def test_before_any_run(api):
    assert api.get("/api/v1/research/themes/").json() == []
    r = api.get("/api/v1/research/summary/")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_run"
    assert api.get("/api/v1/research/themes/1/").status_code == 404


def test_themes_have_the_contract_shape(api, org):
    world = plant(org, per_person=2)
    _run(org)
    r = api.get("/api/v1/research/themes/")
    assert r.status_code == 200
    themes = r.json()
    assert themes and len(themes) <= 8
    for item in themes:
        assert set(item) == {"id", "label", "size", "sentiment", "examples", "trend", "by_segment"}
        assert set(item["trend"]) == {"last_30d", "prev_30d", "change"}
        for entry in item["by_segment"]:
            assert set(entry) == {"segment_id", "share", "index"}
        for example in item["examples"]:
            assert set(example) == {"feedback_id", "text"}
    assert [t["size"] for t in themes] == sorted((t["size"] for t in themes), reverse=True)
    fading = world["segments"]["Fading"].pk
    delivery = next(t for t in themes if "delivery" in t["label"].lower())
    assert any(e["segment_id"] == fading and e["index"] > 1.5 for e in delivery["by_segment"])

    one = api.get(f"/api/v1/research/themes/{delivery['id']}/").json()
    assert one["label"] == delivery["label"] and one["phrases"]
    assert one["trend"]["trend"] in {"growing", "shrinking", "steady", "too few"}
    entry = next(e for e in one["by_segment"] if e["segment_id"] == fading)
    assert entry["notable"] and entry["sentence"].startswith("Fading Small-Basket Shoppers")


def test_summary_says_which_model(api_read, org):
    plant(org, per_person=1)
    _run(org)
    data = api_read.get("/api/v1/research/summary/").json()
    assert data["model"] == "lexicon"
    assert "word list" in data["model_sentence"]
    assert data["feedback_count"] == data["summary"]["feedback"] > 0
    assert data["macro_f1"] is None and data["rated"] == 0
    assert {"last_30d", "prev_30d", "by_source", "positive", "negative"} <= set(data["summary"])


def test_another_organisations_theme_is_not_found(api, org, other_org):
    plant(other_org, per_person=1)
    _run(other_org)
    with tenant_context(other_org):
        theirs = Theme.objects.first()
    assert api.get(f"/api/v1/research/themes/{theirs.pk}/").status_code == 404
    assert api.get("/api/v1/research/themes/").json() == []
