"""The one way consent changes: every grant or withdrawal, from an import, a bulk
API call, `PATCH customers/{id}/`, the site's customer form, an unsubscribe link
or a preference page, goes through the rules below, is written to the history
(`ConsentChange`: when, how, who, from where) and only then to the customer's
current fields (`accepts_email`, `email_consent_at`, `email_consent_source`, and
the same for SMS). Campaigns read the current fields; the history says why.

Precedence, for one channel of one customer:

1. **Same value**: nothing changes and nothing is recorded (a repeated import is
   unchanged).
2. **Older news**: a change that states its own time (`email_consent_at` /
   `sms_consent_at` in a customers file or bulk record) older than the time of
   the value held is not applied.
3. **The person's own withdrawal sticks**: after an unsubscribe (link or
   preference page), only a grant from the person (the preference page) or a
   grant stating a time later than the withdrawal reverses it. A grant with no
   time of its own (an import or bulk record without the column, the API's
   PATCH, the site's consent box) leaves the customer unsubscribed.

Imports and bulk calls keep the held value silently when a rule says so (the row
is not an error); the site and `PATCH` answer with a sentence naming the field.
Erasure removes the history with the person (`consent_history_erase`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from accounts.actor import Actor
from core.exceptions import ApplicationError

from ..models import ConsentChange, ConsentVia, Customer

CHANNELS = ("email", "sms")
CHANNEL_WORDS = {"email": "email", "sms": "SMS"}
# The current-state fields of each channel: only this module writes them.
CONSENT_FIELDS = tuple(
    name
    for channel in CHANNELS
    for name in (f"accepts_{channel}", f"{channel}_consent_at", f"{channel}_consent_source")
)
# Changes the person made themself.
PERSON_VIA = (ConsentVia.UNSUBSCRIBE, ConsentVia.PREFERENCE)

APPLIED, UNCHANGED, OLDER, UNSUBSCRIBED = "applied", "unchanged", "older", "unsubscribed"


@dataclass(frozen=True)
class Held:
    """The value held for one channel, and how it came."""

    granted: bool
    at: dt.datetime | None
    via: str = ""


def consent_decide(*, held: Held, granted: bool, at: dt.datetime | None, via: str) -> str:
    """Which rule applies: `APPLIED`, or why not (`UNCHANGED`, `OLDER`, `UNSUBSCRIBED`)."""
    if bool(granted) == held.granted:
        return UNCHANGED
    if at is not None and held.at is not None and at < held.at:
        return OLDER
    if granted and held.via in PERSON_VIA and via != ConsentVia.PREFERENCE:
        if at is None or held.at is None or at <= held.at:
            return UNSUBSCRIBED
    return APPLIED


def _via_for(actor: Actor) -> str:
    return {"api_key": ConsentVia.API, "user": ConsentVia.SITE}.get(actor.kind, ConsentVia.SYSTEM)


def _source(source: str, actor: Actor, via: str) -> str:
    if source:
        return source[:200]
    if via in PERSON_VIA:
        return ConsentVia(via).label
    return (f"edited by {actor.label}" if actor.is_user else actor.label)[:200]


def _last_via(customer_id: int, channel: str) -> str:
    last = (
        ConsentChange.objects.filter(customer_id=customer_id, channel=channel)
        .order_by("-changed_at", "-id")
        .values_list("via", flat=True)
        .first()
    )
    return last or ""


def held_for(customer: Customer, channel: str) -> Held:
    granted = bool(getattr(customer, f"accepts_{channel}"))
    at = getattr(customer, f"{channel}_consent_at")
    # How it came matters only to rule 3 (a withdrawal the person made).
    via = "" if granted or at is None else _last_via(customer.pk, channel)
    return Held(granted, at, via)


def refusal(channel: str, outcome: str, held: Held) -> str:
    word = CHANNEL_WORDS[channel]
    when = f" on {timezone.localtime(held.at):%Y-%m-%d}" if held.at else ""
    if outcome == UNSUBSCRIBED:
        return (
            f"This customer unsubscribed from {word}{when}. Only their own opt-in, or a "
            f"`{channel}_consent_at` time later than that in a file or bulk record, can "
            "reverse it."
        )
    return f"The {word} consent held is newer ({when.strip() or 'unknown'}) than this change."


def consent_change(
    *,
    customer: Customer,
    channel: str,
    granted: bool,
    actor: Actor | Any = None,
    via: str = "",
    source: str = "",
    at: dt.datetime | None = None,
    strict: bool = False,
) -> ConsentChange | None:
    """Grant or withdraw one channel's consent. `at` is the time the change states
    (None: it happens now). Returns the history row, or None when a rule kept the
    held value; with `strict` a kept change raises `ApplicationError` naming the
    field instead (unless it only repeats the held value)."""
    if channel not in CHANNELS:
        raise ApplicationError(f"Unknown consent channel '{channel}'.")
    if customer.erased_at is not None:
        raise ApplicationError("This customer's data was erased; it cannot be changed.")
    actor = Actor.of(actor, organization=customer.organization_id)
    via = via or _via_for(actor)
    now = timezone.now()
    held = held_for(customer, channel)
    outcome = consent_decide(held=held, granted=granted, at=at, via=via)
    if outcome != APPLIED:
        if strict and outcome != UNCHANGED:
            name = f"accepts_{channel}"
            message = refusal(channel, outcome, held)
            raise ApplicationError(message, {"fields": {name: message}})
        return None
    when = at or now
    source = _source(source, actor, via)
    change = ConsentChange.objects.create(
        customer=customer,
        channel=channel,
        granted=bool(granted),
        changed_at=when,
        source=source,
        via=via,
        actor_kind=actor.kind,
        actor_label=actor.label[:254],
        recorded_at=now,
    )
    setattr(customer, f"accepts_{channel}", bool(granted))
    setattr(customer, f"{channel}_consent_at", when)
    setattr(customer, f"{channel}_consent_source", source)
    customer.updated_at = now
    customer.save(
        update_fields=[
            f"accepts_{channel}",
            f"{channel}_consent_at",
            f"{channel}_consent_source",
            "updated_at",
        ]
    )
    return change


def consent_history(*, customer: Customer, limit: int | None = None):
    """The customer's changes of consent, newest first."""
    qs = ConsentChange.objects.filter(customer=customer).order_by("-changed_at", "-id")
    return qs[:limit] if limit else qs


def consent_history_erase(*, customer_ids: list[int]) -> int:
    """Erasure: the history goes with the person (the current fields are blanked
    with the rest of the profile)."""
    deleted, _ = ConsentChange.objects.filter(customer_id__in=customer_ids).delete()
    return deleted


def consent_history_restore(*, entries: list[dict]) -> int:
    """A restore (customers.services.backup): the organisation's history exactly as
    its archive holds it, replacing what the restore's own import recorded. Each entry
    holds the ConsentChange fields and `customer_id`; nothing is decided here: the
    archived history already was."""
    from accounts.tenancy import require_organization_id

    org_id = require_organization_id()
    ConsentChange.objects.bulk_create(
        [ConsentChange(organization_id=org_id, **entry) for entry in entries], batch_size=1000
    )
    return len(entries)


# --- imports and bulk records ---------------------------------------------------------


@dataclass
class ConsentBatch:
    """The rules for an import or bulk call, which holds its customers' state in
    memory and writes them in one statement: `apply` decides row by row and
    changes the in-memory state, `history_rows` are inserted once the customers'
    ids are known."""

    actor: Actor
    source: str
    via: str = ConsentVia.IMPORT
    now: dt.datetime = field(default_factory=timezone.now)
    kept: int = 0
    _changes: list[tuple[str, str, bool, dt.datetime]] = field(default_factory=list)
    _via: dict[tuple[str, str], str] = field(default_factory=dict)

    def held_via(self, existing: dict[str, dict]) -> None:
        """How the held withdrawals of these stored customers came (rule 3): one
        query for the customers of a chunk whose consent is withdrawn."""
        ids = {}
        for key, row in existing.items():
            for channel in CHANNELS:
                if not row.get(f"accepts_{channel}") and row.get(f"{channel}_consent_at"):
                    ids[row["id"]] = key
        if not ids:
            return
        seen = set()
        for cid, channel, via in (
            ConsentChange.objects.filter(customer_id__in=list(ids))
            .order_by("customer_id", "channel", "-changed_at", "-id")
            .values_list("customer_id", "channel", "via")
        ):
            if (cid, channel) not in seen:
                seen.add((cid, channel))
                self._via[(ids[cid], channel)] = via

    def apply(self, key: str, state: dict, values: dict) -> bool:
        """Apply the row's consent (`accepts_*`, with `*_consent_at` when given) to
        the customer's in-memory `state`; True when something changed."""
        changed = False
        for channel in CHANNELS:
            name = f"accepts_{channel}"
            if values.get(name) is None:
                continue
            granted, at = bool(values[name]), values.get(f"{channel}_consent_at")
            held = Held(
                bool(state.get(name)),
                state.get(f"{channel}_consent_at"),
                self._via.get((key, channel), ""),
            )
            outcome = consent_decide(held=held, granted=granted, at=at, via=self.via)
            if outcome != APPLIED:
                self.kept += outcome != UNCHANGED
                continue
            when = at or self.now
            state[name] = granted
            state[f"{channel}_consent_at"] = when
            state[f"{channel}_consent_source"] = self.source[:200]
            self._via[(key, channel)] = self.via
            self._changes.append((key, channel, granted, when))
            changed = True
        return changed

    HISTORY_COLUMNS = (
        "customer_id",
        "channel",
        "granted",
        "changed_at",
        "source",
        "via",
        "actor_kind",
        "actor_label",
        "recorded_at",
    )

    def history_rows(self, ids: dict[str, int]) -> list[list]:
        rows = [
            [
                ids[key],
                channel,
                granted,
                when,
                self.source[:200],
                self.via,
                self.actor.kind,
                self.actor.label[:254],
                self.now,
            ]
            for key, channel, granted, when in self._changes
            if key in ids
        ]
        self._changes = []
        return rows
