"""Which channel works best for a group of customers, from past engagement.

The rule (the audience and segment pages show its result in plain words):

- Evidence is the last `WINDOW_DAYS` days up to the organisation's latest data
  date (its newest order or event, as the pipeline uses), not today, so imported
  history counts.
- **Message channels** (email, SMS, push) come from events: Segmenta's own
  `message_sent`, `message_opened`, `message_clicked` and `converted` with a
  `channel` property, and imported event types whose name mentions email, mail,
  newsletter, SMS or push (`email_open`, `EmailClicked`, `sms_click`; bounces,
  complaints and unsubscribes are not contact). A customer is *reached* by a
  channel when they have any such event for it, and *engaged* when one of those
  events is a click or a conversion (clicked, converted, purchase, order, redeem).
  Opens are reach only: mail clients open messages by themselves.
  Rate = engaged / reached.
- **Order channels** (the orders' `channel`: web, store, phone, marketplace, …):
  the reached customers are those who placed a paid order with a known channel in
  the window; engaged are those who ordered through this channel. Rate = share of
  recent buyers who buy through it.
- A channel needs at least `MIN_REACHED` reached customers and one engaged to be a
  candidate. The best channel is the candidate message channel with the highest
  rate (campaigns send through those); only when no message channel has enough
  evidence is it the order channel most of the group's recent buyers use. Ties go
  to more engaged customers, then the channel's name. No candidate: None.

`best_channel(customer_ids, *, organization)` answers for any group (an audience);
`segment_best_channels()` for every segment of the live run in one pass, cached
briefly per organisation and run. `segment_panel` is the segment page's panel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.sensitive import name_words

WINDOW_DAYS = 180
MIN_REACHED = 20
CACHE_SECONDS = 600

MESSAGE_CHANNELS = ("email", "sms", "push")
SEGMENTA_MESSAGE_TYPES = ("message_sent", "message_opened", "message_clicked", "converted")
_ENGAGED_TYPES = frozenset({"message_clicked", "converted"})
_CHANNEL_WORDS = {
    "email": "email",
    "emails": "email",
    "mail": "email",
    "newsletter": "email",
    "sms": "sms",
    "push": "push",
}
_ENGAGED_WORDS = frozenset(
    {
        "click",
        "clicked",
        "clicks",
        "convert",
        "converted",
        "conversion",
        "purchase",
        "purchased",
        "order",
        "ordered",
        "redeem",
        "redeemed",
    }
)
_NOT_CONTACT_WORDS = frozenset(
    {
        "bounce",
        "bounced",
        "complaint",
        "complained",
        "unsubscribe",
        "unsubscribed",
        "optout",
        "failed",
        "dropped",
        "rejected",
    }
)
LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push notifications",
    "web": "Web shop",
    "online": "Online shop",
    "app": "App",
    "store": "Store",
    "shop": "Shop",
    "pos": "Store till",
    "phone": "Phone",
    "marketplace": "Marketplace",
}

__all__ = [
    "Evidence",
    "best_channel",
    "classify_event_type",
    "group_best_channels",
    "segment_best_channels",
    "segment_panel",
]


# --- the rule (no ORM) -----------------------------------------------------------------
def classify_event_type(event_type: str) -> tuple[str, bool] | None:
    """An imported event type -> (message channel, engaged?), or None when it is not
    a message event. `email_click` -> ("email", True); `sms_sent` -> ("sms", False)."""
    words = set(name_words(event_type))
    if words & _NOT_CONTACT_WORDS or ("opt" in words and "out" in words):
        return None
    channels = {_CHANNEL_WORDS[w] for w in words if w in _CHANNEL_WORDS}
    if len(channels) != 1:
        return None
    return channels.pop(), bool(words & _ENGAGED_WORDS)


def _label(channel: str) -> str:
    return LABELS.get(channel, channel[:1].upper() + channel[1:])


@dataclass(frozen=True)
class Evidence:
    """Engagement in the window: `contacts` has one row per (kind, channel,
    customer_id) with `engaged` (bool); `buyers` are the customers with a paid
    order of known channel (order channels' reached customers)."""

    contacts: pd.DataFrame
    buyers: np.ndarray
    as_of: dt.date | None
    window_days: int = WINDOW_DAYS

    @classmethod
    def empty(cls) -> Evidence:
        return cls(
            pd.DataFrame(
                {
                    "kind": pd.Series(dtype=object),
                    "channel": pd.Series(dtype=object),
                    "customer_id": pd.Series(dtype=np.int64),
                    "engaged": pd.Series(dtype=bool),
                }
            ),
            np.empty(0, dtype=np.int64),
            None,
        )


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


_MESSAGES = {"email": "emails", "sms": "text messages", "push": "push notifications"}


def _reason(best: dict, runner_up: dict | None, window_days: int) -> str:
    label = best["label"]
    if best["kind"] == "message":
        messages = _MESSAGES.get(best["channel"], f"{label} messages")
        text = (
            f"{best['engaged']:,} of the {best['customers']:,} customers here who got "
            f"{messages} in the last {window_days} days clicked or bought from one "
            f"({_percent(best['rate'])})"
        )
    else:
        text = (
            f"No message channel has enough evidence yet, but {best['engaged']:,} of the "
            f"{best['customers']:,} customers here who ordered in the last {window_days} days "
            f"ordered through {label} ({_percent(best['rate'])})"
        )
    if runner_up is not None:
        text += f", against {_percent(runner_up['rate'])} for {runner_up['label']}"
    return text + "."


def _summary(rows: list[dict], window_days: int, as_of: dt.date | None) -> dict | None:
    """The best channel of one group from its per-channel rows, or None."""
    if not rows:
        return None
    by_channel = sorted(rows, key=lambda r: (r["kind"] != "message", -r["rate"], r["channel"]))
    candidates = [r for r in by_channel if r["customers"] >= MIN_REACHED and r["engaged"] > 0]
    for kind in ("message", "order"):
        ranked = sorted(
            (r for r in candidates if r["kind"] == kind),
            key=lambda r: (-r["rate"], -r["engaged"], r["channel"]),
        )
        if ranked:
            best = ranked[0]
            runner_up = ranked[1] if len(ranked) > 1 else None
            return {
                "channel": best["channel"],
                "label": best["label"],
                "kind": kind,
                "rate": best["rate"],
                "customers": best["customers"],
                "engaged": best["engaged"],
                "reason": _reason(best, runner_up, window_days),
                "window_days": window_days,
                "as_of": as_of.isoformat() if as_of else None,
                "min_customers": MIN_REACHED,
                "by_channel": by_channel,
            }
    return None


def group_best_channels(evidence: Evidence, membership: pd.DataFrame) -> dict:
    """The best channel of each group: `membership` has columns `group` and
    `customer_id` (a customer may be in several groups). Groups without evidence
    are left out."""
    if membership.empty:
        return {}
    membership = membership[["group", "customer_id"]].drop_duplicates()
    per_group: dict = {}
    contacts = evidence.contacts
    if len(contacts):
        joined = contacts.merge(membership, on="customer_id", how="inner")
        counted = joined.groupby(["group", "kind", "channel"], sort=False).agg(
            customers=("customer_id", "size"), engaged=("engaged", "sum")
        )
        for (group, kind, channel), row in counted.iterrows():
            per_group.setdefault(group, []).append(
                {
                    "kind": kind,
                    "channel": channel,
                    "engaged": int(row["engaged"]),
                    # order channels: filled with the group's recent buyers below
                    "customers": int(row["customers"]) if kind == "message" else 0,
                }
            )
    if len(evidence.buyers):
        in_group = membership[membership["customer_id"].isin(evidence.buyers)]
        buyers = in_group.groupby("group", sort=False).size()
        for group, rows in per_group.items():
            for row in rows:
                if row["kind"] == "order":
                    row["customers"] = int(buyers.get(group, 0))
    found = {}
    for group, rows in per_group.items():
        shaped = [
            {
                "channel": r["channel"],
                "label": _label(r["channel"]),
                "kind": r["kind"],
                "customers": r["customers"],
                "engaged": r["engaged"],
                "rate": round(r["engaged"] / r["customers"], 4) if r["customers"] else 0.0,
            }
            for r in rows
        ]
        summary = _summary(shaped, evidence.window_days, evidence.as_of)
        if summary is not None:
            found[group] = summary
    return found


# --- loading ---------------------------------------------------------------------------
def _latest_data_at():
    from django.db.models import Max

    from customers.models import Event, Order

    latest = [
        Order.objects.aggregate(at=Max("ordered_at"))["at"],
        Event.objects.aggregate(at=Max("occurred_at"))["at"],
    ]
    latest = [at for at in latest if at is not None]
    return max(latest) if latest else None


def load_evidence(*, window_days: int = WINDOW_DAYS) -> Evidence:
    """Engagement of the current organisation's customers in the window, deduplicated
    by the database (one row per customer, channel and event type)."""
    from django.db.models.fields.json import KeyTextTransform

    from customers.models import Event, Order, OrderStatus

    until = _latest_data_at()
    if until is None:
        return Evidence.empty()
    since = until - dt.timedelta(days=window_days)
    frames = []

    events = Event.objects.filter(occurred_at__gt=since, occurred_at__lte=until).order_by()
    types = set(events.values_list("type", flat=True).distinct())
    imported = {t: c for t in types if (c := classify_event_type(t)) is not None}
    ours = [t for t in SEGMENTA_MESSAGE_TYPES if t in types]
    if ours:
        rows = list(
            events.filter(type__in=ours, customer__erased_at__isnull=True)
            .annotate(via=KeyTextTransform("channel", "properties"))
            .values_list("customer_id", "type", "via")
            .distinct()
        )
        if rows:
            frame = pd.DataFrame(rows, columns=["customer_id", "type", "channel"])
            frame["channel"] = (
                frame["channel"]
                .astype(object)
                .map(lambda v: str(v).strip().casefold() if v is not None else "")
            )
            frame = frame[frame["channel"].isin(MESSAGE_CHANNELS)]
            frame["engaged"] = frame["type"].isin(_ENGAGED_TYPES)
            frames.append(
                frame.assign(kind="message")[["kind", "channel", "customer_id", "engaged"]]
            )
    if imported:
        rows = list(
            events.filter(type__in=list(imported), customer__erased_at__isnull=True)
            .values_list("customer_id", "type")
            .distinct()
        )
        if rows:
            frame = pd.DataFrame(rows, columns=["customer_id", "type"])
            frame["channel"] = frame["type"].map(lambda t: imported[t][0])
            frame["engaged"] = frame["type"].map(lambda t: imported[t][1]).astype(bool)
            frames.append(
                frame.assign(kind="message")[["kind", "channel", "customer_id", "engaged"]]
            )

    orders = list(
        Order.objects.filter(
            ordered_at__gt=since,
            ordered_at__lte=until,
            customer__isnull=False,
            customer__erased_at__isnull=True,
            is_return=False,
            status=OrderStatus.PAID,
        )
        .exclude(channel="")
        .order_by()
        .values_list("customer_id", "channel")
        .distinct()
    )
    buyers = np.empty(0, dtype=np.int64)
    if orders:
        frame = pd.DataFrame(orders, columns=["customer_id", "channel"])
        frame["channel"] = frame["channel"].map(lambda v: " ".join(str(v).split()).casefold())
        frame = frame[frame["channel"] != ""]
        frame["engaged"] = True
        frames.append(frame.assign(kind="order")[["kind", "channel", "customer_id", "engaged"]])
        buyers = np.unique(frame["customer_id"].to_numpy(dtype=np.int64))

    if not frames:
        return Evidence(Evidence.empty().contacts, buyers, until.date(), window_days)
    contacts = pd.concat(frames, ignore_index=True)
    contacts["customer_id"] = contacts["customer_id"].astype(np.int64)
    contacts["engaged"] = contacts["engaged"].astype(bool)
    contacts = contacts.groupby(["kind", "channel", "customer_id"], as_index=False, sort=False)[
        "engaged"
    ].max()
    return Evidence(contacts, buyers, until.date(), window_days)


def best_channel(customer_ids: Iterable[int], *, organization) -> dict | None:
    """The best channel for these customers (see the module's rule), or None when
    there is no evidence yet."""
    from accounts.tenancy import scope_check

    scope_check(organization=organization)
    ids = np.unique(np.fromiter((int(c) for c in customer_ids), dtype=np.int64))
    if not len(ids):
        return None
    evidence = load_evidence()
    membership = pd.DataFrame({"group": np.zeros(len(ids), dtype=np.int64), "customer_id": ids})
    return group_best_channels(evidence, membership).get(0)


def segment_best_channels(*, organization=None) -> dict[int, dict]:
    """The best channel of every segment of the live run (cluster and RFM), in one
    pass over the memberships; segments without evidence are left out. Cached for
    `CACHE_SECONDS` per organisation and live run."""
    from django.core.cache import cache

    from accounts.tenancy import require_organization_id, scope_check
    from segmentation.models import SegmentationRun, SegmentMembership

    if organization is not None:
        scope_check(organization=organization)
    org_id = organization.pk if organization is not None else require_organization_id()
    run_id = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    if run_id is None:
        return {}
    key = f"audiences:segment-best-channels:org{org_id}:run{run_id}"
    found = cache.get(key)
    if found is not None:
        return found
    rows = list(
        SegmentMembership.objects.filter(run_id=run_id, segment__is_active=True)
        .order_by()
        .values_list("segment_id", "customer_id")
    )
    found = {}
    if rows:
        membership = pd.DataFrame(rows, columns=["group", "customer_id"])
        found = {int(k): v for k, v in group_best_channels(load_evidence(), membership).items()}
    cache.set(key, found, CACHE_SECONDS)
    return found


# --- the segment page's panel ------------------------------------------------------------
def segment_panel(*, request, segment) -> dict:
    """The segment page's "Best channel" panel: always drawn (its template has the
    empty state), with a link to build an audience from the segment."""
    from django.urls import NoReverseMatch, reverse

    from segmentation.models import SegmentKind
    from segmentation.selectors import segment_members

    organization = request.organization
    found = None
    if segment.is_active and segment.kind != SegmentKind.RULE:
        found = segment_best_channels(organization=organization).get(segment.pk)
    else:  # a rule segment (evaluated now) or a retired one
        ids = segment_members(segment=segment).values_list("pk", flat=True)
        found = best_channel(ids, organization=organization)
    try:
        build_url = f"{reverse('audiences:new')}?segment={segment.pk}"
    except NoReverseMatch:
        build_url = None
    return {
        "template": "audiences/_best_channel.html",
        "context": {
            "best": found,
            "segment": segment,
            "build_url": build_url,
            "window_days": WINDOW_DAYS,
            "min_customers": MIN_REACHED,
        },
    }
