"""The segments pages: empty states, the run button and its progress, cards, map
and tables, the segment page with members, CSV export and history, settings."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from core.models import Job
from segmentation.models import Segment, SegmentationSettings, SegmentKind
from segmentation.tests.factories import planted_customers, planted_run
from segmentation.views_segments import csv_safe


@pytest.fixture
def live(org):
    return planted_run(org)


def test_empty_state_without_customers(owner_client):
    response = owner_client.get("/segments/")
    assert response.status_code == 200
    assert b"No customers yet" in response.content
    assert b"Find my segments" not in response.content


def test_empty_state_with_customers_offers_the_run(owner_client, org):
    planted_customers(org, n_customers=60)
    response = owner_client.get("/segments/")
    assert b"No segments yet" in response.content
    assert b"Find my segments" in response.content


def test_run_button_starts_a_job_and_shows_its_progress(
    owner_client, org, django_capture_on_commit_callbacks
):
    planted_customers(org, n_customers=300)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/segments/run/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'class="job-progress"' in response.content
    with tenant_context(org):
        job = Job.objects.get(kind="segments")
        assert job.status == "succeeded", job.message
        assert job.result["url"] == "/segments/"
    page = owner_client.get("/segments/")
    assert b"Segments found by machine learning" in page.content


def test_a_second_click_while_running_does_not_start_another_job(owner_client, org):
    planted_customers(org, n_customers=60)
    owner_client.post("/segments/run/")  # queued: on_commit never fires in this test
    owner_client.post("/segments/run/")
    with tenant_context(org):
        assert Job.objects.filter(kind="segments").count() == 1


def test_viewer_cannot_start_a_run(client, viewer, org):
    planted_customers(org, n_customers=60)
    client.force_login(viewer)
    assert client.post("/segments/run/").status_code == 403
    with tenant_context(org):
        assert not Job.objects.exists()
    page = client.get("/segments/")
    assert page.status_code == 200
    assert b"Find my segments" not in page.content


def test_segments_page_shows_cards_map_and_rfm(owner_client, live):
    run, truth = live
    response = owner_client.get("/segments/")
    assert response.status_code == 200
    html = response.content.decode()
    with tenant_context(run.organization_id):
        clusters = list(Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True))
    for segment in clusters:
        assert segment.name in html
        assert reverse("segmentation:segment_detail", args=[segment.pk]) in html
    assert "vendor/plotly.min.js" in html
    assert 'id="segment-map"' in html
    assert "Champions" in html
    data = json.loads(
        html.split('id="segment-chart-data" type="application/json">', 1)[1].split("</script>", 1)[
            0
        ]
    )
    assert len(data["projection"]["x"]) == len(truth)
    # the map colours top-level segments; sub-segments are listed in their cards
    assert {s["id"] for s in data["segments"]} == {s.pk for s in clusters if s.parent_id is None}
    share = round(100 * sum(data["projection"]["explained"]))
    assert share > 0 and f"together {share}% of the variation" in html


def test_segment_page_lists_members_profile_and_persona(owner_client, live, org):
    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
        persona = segment.persona
    response = owner_client.get(f"/segments/{segment.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert persona.summary[:40] in html
    assert segment.profile["sentences"][0][:30] in html
    assert f"{segment.size:,} customers" in html
    assert "Page 1 of" in html
    assert owner_client.get(f"/segments/{segment.pk}/?page=2").status_code == 200


def test_members_export_is_safe_for_spreadsheets(owner_client, live, org):
    from customers.models import Customer

    with tenant_context(org):
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
        member = segment.memberships.first().customer
        Customer.objects.filter(pk=member.pk).update(
            first_name='=HYPERLINK("x")', last_name="@SUM(1)"
        )
    response = owner_client.get(f"/segments/{segment.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["id", "customer_id", "email"]
    assert len(rows) == segment.size + 1
    row = next(r for r in rows if r[0] == str(member.pk))
    assert row[3] == '\'=HYPERLINK("x")' and row[4] == "'@SUM(1)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-3", "'-3"),
        ("@x", "'@x"),
        ("ok", "ok"),
        (None, ""),
    ],
)
def test_csv_safe(value, expected):
    assert csv_safe(value) == expected


def test_history_and_moves_after_two_runs(owner_client, live, org):
    from segmentation.services.segments import segmentation_run

    with tenant_context(org):
        segmentation_run(organization=org)
        segment = Segment.objects.filter(kind=SegmentKind.CLUSTER).order_by("-size").first()
    response = owner_client.get(f"/segments/{segment.pk}/")
    html = response.content.decode()
    assert 'id="history-chart"' in html
    assert f"{segment.size:,} of {segment.size:,} members stayed" in html
    page = owner_client.get("/segments/").content.decode()
    assert "Moves since the previous run" in page


def test_owner_changes_the_bounds(owner_client, org):
    response = owner_client.post(
        "/segments/settings/",
        {"k_min": "3", "k_max": "5", "min_segment_size": "25", "min_segment_share": "0.05"},
    )
    assert response.status_code == 302
    with tenant_context(org):
        row = SegmentationSettings.objects.get()
    assert (row.k_min, row.k_max, row.min_segment_size, row.min_segment_share) == (3, 5, 25, 0.05)


def test_bad_bounds_are_refused_with_a_message(owner_client, org):
    response = owner_client.post(
        "/segments/settings/",
        {"k_min": "6", "k_max": "3", "min_segment_size": "10", "min_segment_share": "0.02"},
        follow=True,
    )
    assert "Must be at least the fewest segments" in response.content.decode()
    with tenant_context(org):
        assert not SegmentationSettings.objects.exists()


def test_marketers_cannot_change_the_bounds(client, marketer):
    client.force_login(marketer)
    response = client.post("/segments/settings/", {"k_min": "3", "k_max": "4"})
    assert response.status_code == 403


def test_a_run_with_too_few_customers_explains_itself(org, owner):
    from core.jobs import job_start
    from segmentation.tasks_segments import segments_run

    planted_customers(org, n_customers=15)
    with tenant_context(org):
        job = job_start(organization=org, kind="segments", task=segments_run, user=owner, sync=True)
    assert job.status == "failed"
    assert "too few" in job.message


JARGON = ("silhouette", "k-means", "principal component", "adjusted rand", "centroid")


def test_segments_page_speaks_plainly_outside_about_this_model(owner_client, live):
    """Issue 9: the Segments page showed a "Separation (silhouette)" stat card and
    principal components under the map; model terms belong in "About this model"."""
    import re

    html = owner_client.get(reverse("segmentation:segments")).content.decode()
    assert '<details id="about-model">' in html
    main = re.search(r"<main\b.*?</main>", html, re.S).group(0)
    plain = re.sub(r'<details id="about-model">.*?</details>', "", main, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", plain).lower()
    found = [word for word in JARGON if word in text]
    assert not found, found
    assert "How distinct the segments are" in html
