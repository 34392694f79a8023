"""The Recommendations page: its empty states, the live run in plain words (how
well, what is served, repeats), the chart, the most recommended products, "About
this model", the Run now button with progress, the repeat-purchase setting (and a
viewer who can do neither), and no model terms outside "About this model"."""

from __future__ import annotations

import re

import pytest

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from core.models import Job
from predictions.tests.factories import write_world
from recommendations.models import RecommendationRun, RecommendationSettings
from recommendations.services import recommendations_run
from recommendations.tests.factories import planted_world
from tests.test_plain_words import PATTERN, plain_text

URL = "/recommendations/"


@pytest.fixture
def planted(org):
    return write_world(org, planted_world())


@pytest.fixture
def live(org, planted):
    with tenant_context(org):
        return recommendations_run(organization=org)


def test_nav_names_the_page(owner_client):
    html = owner_client.get("/").content.decode()
    assert f'href="{URL}"' in html and "Recommendations" in html


def test_empty_state_without_orders(owner_client):
    response = owner_client.get(URL)
    assert response.status_code == 200
    assert b"No purchases to learn from yet" in response.content
    assert b"Run now</button>" not in response.content


def test_with_orders_and_no_run_the_owner_is_offered_the_run(owner_client, planted):
    html = owner_client.get(URL).content.decode()
    assert "No recommendations yet" in html
    assert "Run now" in html
    assert "About this model" not in html


def test_page_with_a_live_run(owner_client, live):
    html = owner_client.get(URL).content.decode()
    served, popularity = live.entry(live.served), live.entry("popularity")
    found = f"{100 * served['precision_at_10']:.0f} in every 100"
    assert f"{found} of these suggestions were bought next" in html
    assert f"of best-sellers alone, {100 * popularity['precision_at_10']:.0f} in every 100" in html
    assert "are not recommended again" in html  # the hold-out said so on this world
    # one bar per method tried, the one in use marked
    bars = re.findall(r'class="progress-fill" style="width: ([\d.]+)%', html)
    assert len(bars) == len(live.evaluation)
    assert max(float(b) for b in bars) == 100.0
    assert html.count("(in use)") == 2  # the chart and the table
    # the most recommended products, with how many customers get each
    section = html.split('id="most"')[1].split('id="settings"')[0]
    counts = [
        int(c.replace(",", "")) for c in re.findall(r'<td class="num">([\d,]+)</td>', section)
    ]
    assert 1 <= len(counts) <= 10
    assert counts == sorted(counts, reverse=True)
    assert "About this model" in html and "Precision@10" in html
    assert '<div class="table-wrap">' in html
    text = plain_text(html)
    assert not PATTERN.findall(text), PATTERN.findall(text)
    for term in ("precision", "recall", "MAP@10", "ALS", "EASE", "kNN", "cosine"):
        assert term.lower() not in text.lower(), term


def test_run_now_starts_the_step_with_progress(
    owner_client, org, planted, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"{URL}run/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'class="job-progress"' in response.content
    with tenant_context(org):
        job = Job.objects.get(kind="recommendations")
        assert job.status == "succeeded", job.message
        assert job.result["url"] == URL
        assert RecommendationRun.objects.get(is_live=True).job_id == job.pk
    assert b"of these suggestions were bought next" in owner_client.get(URL).content


def test_the_setting_form_changes_the_setting(client, marketer, org, live):
    client.force_login(marketer)
    page = client.get(URL).content.decode()
    assert 'name="repeats" value="auto" checked' in page
    assert 'name="csrfmiddlewaretoken"' in page
    response = client.post(f"{URL}settings/", {"repeats": "always"}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "always recommended again" in html and "applies from the next run" in html
    assert 'name="repeats" value="always" checked' in html
    with tenant_context(org):
        assert RecommendationSettings.objects.get().repeats == "always"
        assert AuditLogEntry.objects.filter(action="recommendations.settings_changed").exists()
    refused = client.post(f"{URL}settings/", {"repeats": "sometimes"}, follow=True)
    assert b"repeats must be one of auto, always or never" in refused.content
    with tenant_context(org):
        assert RecommendationSettings.objects.get().repeats == "always"


def test_a_viewer_sees_the_page_but_cannot_change_or_run(client, viewer, org, live):
    client.force_login(viewer)
    page = client.get(URL)
    assert page.status_code == 200
    assert b"Run now</button>" not in page.content
    assert b'name="repeats"' not in page.content
    assert client.post(f"{URL}settings/", {"repeats": "never"}).status_code == 403
    assert client.post(f"{URL}run/").status_code == 403
    with tenant_context(org):
        assert not RecommendationSettings.objects.exists()
        assert not Job.objects.filter(kind="recommendations").exists()
