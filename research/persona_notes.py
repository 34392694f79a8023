"""What a persona's customers talk about more than others, as a line on persona cards
(Capability.persona_notes), linking to the segment page's "What they praise and
complain about": the latest research run's themes the segment mentions notably more
often than everyone else (research/text/trends.py `segment_index`: at least 5
mentions, 1.5× or more, Fisher p < 0.05). One query for all the cards on a page."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from .models import ResearchRun, Theme

MAX_LABELS = 3


def persona_notes(segment_ids) -> dict[int, list[dict[str, Any]]]:
    wanted = {int(s) for s in segment_ids if s is not None}
    run = ResearchRun.objects.order_by("-finished_at", "-id").first()
    if not wanted or run is None:
        return {}
    found: dict[int, list[tuple[float, str]]] = {}
    for theme in Theme.objects.filter(run=run).only("label", "by_segment"):
        for entry in theme.by_segment or []:
            sid, index = entry.get("segment_id"), entry.get("index")
            if sid in wanted and entry.get("notable") and index is not None and index > 1:
                found.setdefault(sid, []).append((float(index), theme.label))
    notes: dict[int, list[dict[str, Any]]] = {}
    for sid, items in found.items():
        top = sorted(items, key=lambda x: -x[0])[:MAX_LABELS]
        text = "; ".join(f"{label} ({index:.1f}× as often)" for index, label in top)
        url = reverse("segmentation:segment_detail", args=[sid]) + "#panel-voice"
        notes[sid] = [{"term": "In their feedback, more than others", "text": text, "url": url}]
    return notes
