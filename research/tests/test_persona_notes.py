"""A persona card says what its customers mention more than others in their feedback
(Capability.persona_notes), from the latest research run's notable segment indexes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.tenancy import tenant_context
from research.models import ResearchRun, Theme
from research.persona_notes import persona_notes
from segmentation.tests.factories import PersonaFactory, SegmentationRunFactory, SegmentFactory

pytestmark = pytest.mark.django_db


def _segment(org, name):
    from segmentation.models import SegmentationRun

    run = SegmentationRun.objects.filter(is_live=True).first() or SegmentationRunFactory(
        organization=org, is_live=True
    )
    segment = SegmentFactory(organization=org, name=name, first_run=run, last_run=run, size=50)
    PersonaFactory(organization=org, segment=segment, name=f"{name} persona")
    return segment


def _theme(org, run, label, entries):
    return Theme.objects.create(
        organization=org, run=run, label=label, size=40, sentiment=-0.4, by_segment=entries
    )


def test_notable_themes_show_on_the_persona_card_most_over_mentioned_first(org, owner_client):
    with tenant_context(org):
        fading = _segment(org, "Fading")
        quiet = _segment(org, "Quiet")
        run = ResearchRun.objects.create(organization=org, as_of=timezone.now().date())
        _theme(org, run, "Delivery", [
            {"segment_id": fading.pk, "index": 3.0, "notable": True},
            {"segment_id": quiet.pk, "index": 1.2, "notable": False},
        ])  # fmt: skip
        _theme(org, run, "Prices", [{"segment_id": fading.pk, "index": 1.8, "notable": True}])
        _theme(org, run, "Gifts", [{"segment_id": fading.pk, "index": 0.3, "notable": True}])
        notes = persona_notes([fading.pk, quiet.pk])
    assert list(notes) == [fading.pk]  # nothing stands out for Quiet
    (line,) = notes[fading.pk]
    assert line["text"] == "Delivery (3.0× as often); Prices (1.8× as often)"  # not "less often"
    assert line["url"].endswith(f"/segments/{fading.pk}/#panel-voice")

    page = owner_client.get("/segments/personas/").content.decode()
    assert "Delivery (3.0× as often)" in page
    card = owner_client.get(f"/segments/personas/{fading.persona.pk}/").content.decode()
    assert "In their feedback, more than others" in card


def test_no_run_no_note(org):
    with tenant_context(org):
        segment = _segment(org, "Fading")
        assert persona_notes([segment.pk]) == {}
