"""Personas: written by a run from segment profiles, edited by people.

A person's edit marks the field as human (`Persona.human_edited_fields`); runs
refresh only the other fields, so human edits survive re-runs. The latest machine
text of every field is kept in `Persona.generated`, so a person can return a
field to it (`reset_fields`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from accounts.actor import Actor
from core.exceptions import ApplicationError

from ..models import Persona, Segment

log = logging.getLogger("segmenta.segments")

TEXT_LIMITS = {"name": 120, "preferred_channel": 120, "preferred_time": 120}
MAX_LIST_ITEMS = 20
MAX_TEXT = 4000


def persona_fields_from_ml(written: dict[str, Any]) -> dict[str, Any]:
    """Model fields from `segmentation.ml.personas.Persona.to_dict()`."""

    def text(name: str, limit: int | None = None) -> str:
        value = written.get(name) or ""
        return value[:limit] if limit else value

    return {
        "name": text("name", 120),
        "summary": text("portrait"),
        "traits": list(written.get("key_traits") or []),
        "motivations": list(written.get("motivations") or []),
        "preferred_channel": text("preferred_channel", 120),
        "preferred_time": text("preferred_time", 120),
        "favourite_categories": list(written.get("favourite_categories") or []),
        "favourite_products": list(written.get("favourite_products") or []),
        "value": text("value"),
        "risk": text("risk"),
        "actions": list(written.get("suggested_actions") or []),
    }


def persona_apply_generated(
    *, segment: Segment, generated: dict[str, Any], levels: dict[str, str], persona: Persona | None
) -> Persona:
    """Create or refresh a segment's persona from machine text, keeping human fields.

    Called inside the run's transaction."""
    if persona is None:
        persona = Persona(organization_id=segment.organization_id, segment=segment)
    human = set(persona.human_edited_fields or [])
    for name, value in generated.items():
        if name not in human:
            setattr(persona, name, value)
    persona.generated = generated
    persona.value_level = levels.get("value_level", "")
    persona.risk_level = levels.get("risk_level", "")
    persona.save()
    return persona


def _clean_field(name: str, value: Any) -> Any:
    if name in Persona.LIST_FIELDS:
        if isinstance(value, str):
            value = [line.strip(" -•\t") for line in value.splitlines()]
        if not isinstance(value, list):
            raise ApplicationError(
                f"'{name}' must be a list of texts.", {"fields": {name: "Must be a list."}}
            )
        items = [str(v).strip() for v in value if str(v).strip()]
        if len(items) > MAX_LIST_ITEMS:
            raise ApplicationError(
                f"'{name}' may have at most {MAX_LIST_ITEMS} items.",
                {"fields": {name: f"At most {MAX_LIST_ITEMS} items."}},
            )
        return [item[:500] for item in items]
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ApplicationError(f"'{name}' must be text.", {"fields": {name: "Must be text."}})
    value = value.strip()
    limit = TEXT_LIMITS.get(name, MAX_TEXT)
    if len(value) > limit:
        raise ApplicationError(
            f"'{name}' may be at most {limit} characters.",
            {"fields": {name: f"At most {limit} characters."}},
        )
    if name == "name" and not value:
        raise ApplicationError("A persona needs a name.", {"fields": {"name": "Required."}})
    return value


def persona_update(
    *, persona: Persona, data: dict[str, Any], user=None, reset_fields: list[str] | None = None
) -> Persona:
    """Apply a person's edits. A field whose value changes becomes human-edited;
    `reset_fields` go back to the latest machine text and lose that mark."""
    unknown = [k for k in data if k not in Persona.EDITABLE_FIELDS]
    if unknown:
        raise ApplicationError(
            f"These fields cannot be edited: {', '.join(sorted(unknown))}.",
            {"fields": {k: "Not editable." for k in unknown}},
        )
    reset_fields = list(reset_fields or [])
    bad = [k for k in reset_fields if k not in Persona.EDITABLE_FIELDS]
    if bad:
        raise ApplicationError(f"These fields cannot be reset: {', '.join(sorted(bad))}.")
    human = list(persona.human_edited_fields or [])
    changed: list[str] = []
    for name, raw in data.items():
        value = _clean_field(name, raw)
        if value != getattr(persona, name):
            setattr(persona, name, value)
            changed.append(name)
            if name not in human:
                human.append(name)
    generated = persona.generated or {}
    for name in reset_fields:
        if name in generated:
            setattr(persona, name, generated[name])
        if name in human:
            human.remove(name)
        changed.append(name)
    if not changed:
        return persona
    persona.human_edited_fields = human
    if Actor.person(user) is not None:
        persona.updated_by = Actor.person(user)
    with transaction.atomic():
        persona.save()
        if "name" in changed:
            # the segment is called after its persona, in lists and in the API
            Segment.objects.filter(pk=persona.segment_id).update(name=persona.name)
    log.info("segments.persona_edited persona_id=%s fields=%s", persona.pk, ",".join(changed))
    return persona
